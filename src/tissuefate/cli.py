"""Command line: ``tissuefate simulate``, ``cohort``, ``perfusion``, ``predict``.

The Snakemake rules call the same package functions through workflow/scripts/; the CLI
serves people who want one stage by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tissuefate.errors import InputError
from tissuefate.io.bids import write_bidsignore


def _load_config(paths: list[str]) -> dict:
    import yaml

    config: dict = {}
    for path in paths:
        with open(path) as f:
            _merge(config, yaml.safe_load(f) or {})
    from tissuefate.config import validate_config

    validate_config(config)
    return config


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def cmd_simulate(args) -> None:
    from tissuefate.simulation import participant_labels, simulate_participant, write_plan

    config = _load_config(args.configfile)
    out = Path(args.out or config["dataset"]["bids_dir"])
    write_plan(config, out)
    write_bidsignore(out)
    labels = participant_labels(config["simulation"])
    if args.participant:
        labels = [p.removeprefix("sub-") for p in args.participant]
    for i, label in enumerate(labels, 1):
        simulate_participant(config, out, label)
        print(f"[{i}/{len(labels)}] sub-{label}", file=sys.stderr, flush=True)
    print(f"Wrote a simulated BIDS dataset of {len(labels)} participants to {out}")


def cmd_cohort(args) -> None:
    from tissuefate.cohort import review_participant
    from tissuefate.io.participants import read_participants
    from tissuefate.jobs.cohort import write_cohort

    config = _load_config(args.configfile)
    bids = Path(args.bids or config["dataset"]["bids_dir"])
    participants = read_participants(bids)
    reviews = []
    for i, row in enumerate(participants.to_dict("records"), 1):
        reviews.append(review_participant(bids, row["participant_id"], row, config))
        print(f"[{i}/{len(participants)}] {row['participant_id']}", file=sys.stderr, flush=True)
    write_cohort(reviews, participants, Path(args.out))
    print(f"Wrote the cohort stage to {args.out}")


def cmd_perfusion(args) -> None:
    from tissuefate.perfusion import DEFAULTS, compute_perfusion_maps

    settings = dict(DEFAULTS)
    if args.configfile:
        settings.update(_load_config(args.configfile).get("perfusion", {}))
    if args.method:
        settings["method"] = args.method
    if args.motion_correction:
        settings["motion_correction"] = True
    summary = compute_perfusion_maps(args.dsc, args.out, settings=settings, participant=args.participant,
                                     aif_mask_path=args.aif_mask, echo_time_s=args.echo_time)
    print(f"Wrote Tmax, MTT, CBF, CBV, TTP, the AIF ({summary['AIFVoxels']} voxels) and the QC figure to {args.out}")


def cmd_predict(args) -> None:
    from tissuefate.predict_patient import main_predict

    main_predict(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tissuefate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("simulate", help="write a simulated multi-site stroke cohort as a BIDS dataset")
    p.add_argument("--configfile", nargs="+", default=["config/config.yaml"])
    p.add_argument("--out", help="BIDS folder to write (default: dataset.bids_dir of the config)")
    p.add_argument("--participant", nargs="*", help="only these participants (labels)")
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("cohort", help="review every participant and write the cohort table")
    p.add_argument("--configfile", nargs="+", default=["config/config.yaml"])
    p.add_argument("--bids", help="BIDS folder (default: dataset.bids_dir of the config)")
    p.add_argument("--out", default="results/cohort")
    p.set_defaults(func=cmd_cohort)
    p = sub.add_parser("perfusion", help="perfusion maps (Tmax, MTT, CBF, CBV, TTP) from one raw 4D DSC series")
    p.add_argument("dsc", help="4D DSC NIfTI with its JSON sidecar (RepetitionTime, EchoTime)")
    p.add_argument("--out", required=True, help="folder for the maps, the AIF and the QC figure")
    p.add_argument("--configfile", nargs="*", help="take the perfusion section of these configs")
    p.add_argument("--method", choices=["osvd", "svd", "tikhonov"])
    p.add_argument("--motion-correction", action="store_true",
                   help="rigidly align every frame to the median frame first (antspyx; slower)")
    p.add_argument("--aif-mask", help="3D NIfTI on the series' grid: its voxels are the AIF (no automatic search)")
    p.add_argument("--echo-time", type=float, help="TE in seconds, only if the sidecar has none")
    p.add_argument("--participant", help="participant label, for error messages")
    p.set_defaults(func=cmd_perfusion)
    from tissuefate.predict_patient import add_predict_arguments

    p = sub.add_parser("predict", help="predict one new patient with a model bundle (docs/predict.md)")
    add_predict_arguments(p)
    p.set_defaults(func=cmd_predict)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InputError as err:
        print(f"tissuefate: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
