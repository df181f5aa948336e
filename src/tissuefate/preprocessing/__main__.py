"""Command line of the preprocessing stage (what the rules call).

    python -m tissuefate.preprocessing template --resolution-mm 2 --out-dir results/preprocessing/template
    python -m tissuefate.preprocessing participant --label 001 --bids resources/demo_bids \\
        --results results --configfile config/config.yaml --template-dir results/preprocessing/template
    python -m tissuefate.preprocessing registration-table --bids resources/demo_bids --results results \\
        --labels 001 002 --out results/qc/registration.tsv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _config(args) -> dict:
    if getattr(args, "config_json", None):
        return json.loads(args.config_json)
    if getattr(args, "configfile", None):
        import yaml

        return yaml.safe_load(Path(args.configfile).read_text()) or {}
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tissuefate.preprocessing", description="tissuefate preprocessing stage")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("template", help="write the MNI template files at one resolution")
    p.add_argument("--resolution-mm", type=float, default=2.0)
    p.add_argument("--out-dir", required=True)

    p = sub.add_parser("participant", help="run the per-participant workflow")
    p.add_argument("--label", required=True)
    p.add_argument("--bids", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--configfile", help="the workflow's YAML config (preprocessing and cohort sections are read)")
    p.add_argument("--config-json", help="the same as JSON (e.g. the rule's params)")
    p.add_argument("--template-dir")
    p.add_argument("--threads", type=int, help="ITK threads (set before antspyx is imported)")

    p = sub.add_parser("registration-table", help="write results/qc/registration.tsv")
    p.add_argument("--bids", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--labels", nargs="+", required=True)
    p.add_argument("--out", required=True)

    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        import os

        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    from tissuefate.errors import InputError

    try:
        if args.command == "template":
            from tissuefate.preprocessing.template import template_files

            for path in template_files(args.resolution_mm, args.out_dir).all():
                print(path)
        elif args.command == "participant":
            from tissuefate.preprocessing.workflow import preprocess_participant

            summary = preprocess_participant(args.label, args.bids, args.results, _config(args), template_dir=args.template_dir)
            qc = summary["registration_qc"]
            print(f"{summary['participant_id']}: {summary['runtime_s']} s, registration QC {'passed' if qc['passed'] else 'FAILED'}")
            for line in summary["limitations"]:
                print(f"{summary['participant_id']}: {line}")
        else:
            from tissuefate.io import derivatives
            from tissuefate.jobs.preprocessing import registration_table
            from tissuefate.preprocessing.qc import summarize_accuracy

            folders = [derivatives.participant_dir(args.results, label) for label in args.labels]
            table = registration_table(folders, args.bids, args.out)
            print(json.dumps(summarize_accuracy(table.to_dict("records"))))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
