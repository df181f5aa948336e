"""Seconds per patient for `tissuefate predict`, end to end (bundle checks, unit checks,
registration and the whole preprocessing, every model of the ensemble, mapping back to the
DWI grid, volumes, report), and the models' share of it.

    .venv/bin/python bench/bench_predict.py --bundle results/bundle                 # 2 mm, 2 threads
    .venv/bin/python bench/bench_predict.py --bundle results/bundle --resolution-mm 3 --repeats 1
    .venv/bin/python bench/bench_predict.py --bundle results/bundle --exact        # the study's arithmetic

Timing at a grid other than the bundle's: the script copies the bundle into bench/out/ with the
template at ``--resolution-mm`` and the models replaced by the default architecture
(``model:`` defaults, 5 folds per target) with *untrained* weights. Their time is that of trained
ones (same layers, same arithmetic); their maps mean nothing, and the script says so. The patient
is simulated with config/paper.yaml (native 2 mm) unless ``--configfile`` says otherwise.
Prints wall and CPU seconds (this process and its children), and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from tissuefate.scripting import cpu_seconds

REPO = Path(__file__).resolve().parents[1]


def speed_bundle(src: Path, dst: Path, resolution_mm: int, n_folds: int = 5) -> Path:
    """A copy of ``src`` at ``resolution_mm`` with default-architecture, untrained models."""
    import torch

    from tissuefate.bundle import bundle_files, sha256
    from tissuefate.model import ModelConfig, architecture_record, build_model
    from tissuefate.preprocessing.template import template_files

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    meta = json.loads((dst / "bundle.json").read_text())
    meta["preprocessing"]["template_resolution_mm"] = resolution_mm
    meta["template"]["resolution_mm"] = resolution_mm
    template_files(resolution_mm, dst / "template")
    shutil.rmtree(dst / "models")
    cfg = ModelConfig()
    for target in meta["targets"]:
        models = []
        for fold in range(1, n_folds + 1):
            torch.manual_seed(fold)
            path = dst / "models" / target / f"fold-{fold}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"architecture": architecture_record(cfg), "model": build_model(cfg).state_dict()}, path)
            models.append({"fold": fold, "path": str(path.relative_to(dst))})
        meta["targets"][target]["models"] = models
    meta["note"] = "bench/bench_predict.py speed bundle: untrained weights, timing only"
    (dst / "bundle.json").write_text(json.dumps(meta, indent=2))
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"] = {f: sha256(dst / f) for f in bundle_files(dst)}
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--resolution-mm", type=int, default=2)
    parser.add_argument("--configfile", default=str(REPO / "config" / "paper.yaml"))
    parser.add_argument("--participant", default="001")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--exact", action="store_true", help="the study's arithmetic (tissuefate predict --exact)")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "predict"))
    args = parser.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # before antspyx loads

    import yaml

    from tissuefate.bundle import load_bundle
    from tissuefate.predict_patient import PatientMaps, predict_patient
    from tissuefate.simulation import simulate_participant, write_plan

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(args.bundle)
    if load_bundle(bundle).meta["template"]["resolution_mm"] != args.resolution_mm:
        bundle = speed_bundle(bundle, out / f"bundle-{args.resolution_mm}mm", args.resolution_mm)
        print(f"speed bundle at {args.resolution_mm} mm (untrained default models, timing only): {bundle}")
    config = yaml.safe_load(Path(args.configfile).read_text())
    bids = out / "bids"
    if not (bids / f"sub-{args.participant}").exists():
        write_plan(config, bids)
        simulate_participant(config, bids, args.participant)
    maps = PatientMaps.from_bids(bids, args.participant)
    rows = []
    for r in range(args.repeats):
        load0, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), cpu_seconds()
        summary = predict_patient(bundle, maps, out / f"run-{r}", threads=args.threads, exact=args.exact)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        rt = summary["runtime_s"]
        rows.append((wall, cpu, rt["preprocessing_s"], rt["models_s"], load0, os.getloadavg()[0]))
        n_models = sum(len(m) for m in summary["model"]["members"].values())
        print(f"run {r + 1}: end to end {wall:.1f} s wall, {cpu:.1f} s CPU; preprocessing {rt['preprocessing_s']:.1f} s; "
              f"models ({n_models} models, MNI predict + map back) {rt['models_s']:.1f} s; load average {load0:.1f} -> "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        # Per phase, CPU seconds of this process (all threads: ANTs and torch run in it) and wall.
        for name, ph in rt["phases"].items():
            print(f"    {name:32s} {ph['cpu_s']:7.1f} s CPU {ph['wall_s']:7.1f} s wall", flush=True)
    best = min(rows)
    print(f"best of {len(rows)}: {best[0]:.1f} s wall, {best[1]:.1f} s CPU, models {best[3]:.1f} s "
          f"({args.resolution_mm} mm template, {args.threads} threads, {'exact' if args.exact else 'folded'} models)")


if __name__ == "__main__":
    main()
