"""Seconds per patient for the whole per-patient preprocessing job (the nipype workflow:
coregistrations, affine + SyN to the 2 mm MNI template, every resampling, masks,
normalization, QC measures and figure), on simulated participants of the demo config.

    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 .venv/bin/python bench/bench_preprocessing.py          # 4 patients, 2 threads
    .venv/bin/python bench/bench_preprocessing.py --participants 001 002 --threads 1 --resolution-mm 2

The template files are written once before timing (the rule ``preprocess`` finds them in
``results/preprocessing/template``). Prints one line per patient, the median, and the
registration accuracy against the simulator's truth. Output under bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", nargs="+", default=["001", "002", "003", "004"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolution-mm", type=int, default=2)
    parser.add_argument("--configfile", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "preprocessing"))
    args = parser.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # before antspyx loads

    import numpy as np
    import yaml

    from tissuefate.preprocessing.qc import registration_accuracy
    from tissuefate.preprocessing.template import template_files
    from tissuefate.preprocessing.workflow import preprocess_participant
    from tissuefate.simulation import simulate_participant, write_plan

    config = yaml.safe_load(Path(args.configfile).read_text())
    config.setdefault("preprocessing", {})["template_resolution_mm"] = args.resolution_mm
    out = Path(args.out)
    bids, results = out / "bids", out / "results"
    if results.exists():
        shutil.rmtree(results)
    write_plan(config, bids)
    for label in args.participants:
        if not (bids / f"sub-{label}").exists():
            simulate_participant(config, bids, label)
    template_dir = results / "preprocessing" / "template"
    template_files(args.resolution_mm, template_dir)

    seconds, cpu, accuracy = [], [], []
    for label in args.participants:
        start, start_cpu = time.perf_counter(), time.process_time()
        summary = preprocess_participant(label, bids, results, config, template_dir=template_dir)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)  # all threads: independent of other users' load
        acc = registration_accuracy(label, results, bids)
        accuracy.append(acc)
        slowest = sorted(summary["node_seconds"].items(), key=lambda kv: -kv[1])[:3]
        print(
            f"sub-{label}: {seconds[-1]:.1f} s wall, {cpu[-1]:.1f} s CPU (normalize {summary['node_seconds']['normalize']:.1f} s; slowest "
            + ", ".join(f"{k} {v:.1f}" for k, v in slowest)
            + f"); brain Dice {acc['brain_dice']:.3f}, lesion Dice {acc['lesion_dice']:.3f}, "
            f"median displacement {acc['median_displacement_mm']:.2f} mm, QC {'passed' if summary['registration_qc']['passed'] else 'FAILED'}",
            flush=True,
        )
    med = lambda key: float(np.nanmedian([a[key] for a in accuracy]))  # noqa: E731
    print(
        f"preprocessing, {args.resolution_mm} mm template, {args.threads} threads, {len(seconds)} patients: "
        f"median {np.median(seconds):.1f} s per patient (min {min(seconds):.1f}, max {max(seconds):.1f}), "
        f"{np.median(cpu):.1f} CPU-s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"median brain Dice {med('brain_dice'):.3f}, lesion Dice {med('lesion_dice'):.3f}, "
        f"displacement {med('median_displacement_mm'):.2f} mm"
    )


if __name__ == "__main__":
    main()
