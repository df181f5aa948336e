"""Speed of the simulator, and its calibration against the paper's real-data numbers.

    .venv/bin/python bench/bench_simulation.py speed [n_patients]    # seconds per patient (demo, paper)
    .venv/bin/python bench/bench_simulation.py calibrate [config] [n_included]  # simulated vs paper (docs/simulation.md)
    .venv/bin/python bench/bench_simulation.py figure [config]       # docs/img/simulated_patients.png
    .venv/bin/python bench/bench_simulation.py seeds [config] [n_included] [n_seeds] [sampling]
                                                  # thresholding rows over seeds 1..n (docs/simulation.md)

Calibration simulates every included patient of the config's cohort in the truth MNI
space (tissuefate.simulation.calibration) and prints the "simulated vs paper" table.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from tissuefate.simulation import participant_labels, simulate_participant, write_plan
from tissuefate.simulation.anatomy import load_anatomy

REPO = Path(__file__).resolve().parents[1]


def speed(n: int = 5) -> None:
    for name in ("config.yaml", "paper.yaml"):
        config = yaml.safe_load((REPO / "config" / name).read_text())
        load_anatomy(config["simulation"]["mni_resolution_mm"])  # template loading is once per job
        with tempfile.TemporaryDirectory() as tmp:
            write_plan(config, tmp)
            labels = participant_labels(config["simulation"])[:n]
            start, cpu = time.perf_counter(), time.process_time()
            for label in labels:
                simulate_participant(config, tmp, label)
            per = (time.perf_counter() - start) / len(labels)
            per_cpu = (time.process_time() - cpu) / len(labels)
        sim = config["simulation"]
        print(f"{name}: {per:.2f} s wall, {per_cpu:.2f} s CPU per patient (MNI grid {sim['mni_resolution_mm']} mm, "
              f"native {sim['native_resolution_mm']} mm, {len(labels)} patients)")


def calibrate(config_name: str = "config.yaml", n_included: int | None = None) -> None:
    """``n_included``: another cohort size at the config's resolution (237: the paper's)."""
    from tissuefate.simulation.calibration import calibration_table, markdown_table, measure_cohort

    config = yaml.safe_load((REPO / "config" / config_name).read_text())
    if n_included is not None:
        config["simulation"]["n_included"] = n_included
    start = time.perf_counter()
    df = measure_cohort(config)
    print(df.groupby("group")[["core_ml", "dwi_ml", "tmax6_ml", "final_ml", "mismatch", "final_outside_tmax6", "dice_adc_lesion"]]
          .median().round(2).to_string())
    print(markdown_table(calibration_table(df)))
    print(f"{len(df)} patients in {time.perf_counter() - start:.0f} s")


def seeds(config_name: str, n_included: int, n_seeds: int, sampling: str, jobs: int = 2) -> None:
    """The thresholding rows of ``n_seeds`` cohorts of one design (seeds 1..n): per seed, then
    their median, spread and share inside the paper's ranges."""
    from tissuefate.simulation.calibration import seed_spread

    config = yaml.safe_load((REPO / "config" / config_name).read_text())
    config["simulation"].update(n_included=n_included, sampling=sampling)
    start, cpu = time.perf_counter(), time.process_time()
    df = seed_spread(config, range(1, n_seeds + 1), jobs=jobs)
    values = [c for c in df.columns if c.startswith("thresholding") and not c.endswith("inside")]
    short = {c: c.replace("thresholding ", "").replace("tissue_at_risk", "TAR").replace(" inside", "?") for c in df.columns}
    print(df.rename(columns=short).round(3).to_string(index=False))
    print(f"\n{n_seeds} cohorts of {n_included} included patients, sampling {sampling}:")
    print("| row | median over seeds | sd | 5th-95th percentile | seeds inside the paper's range |")
    print("|---|---|---|---|---|")
    for c in values:
        v = df[c].to_numpy(dtype=float)
        print(f"| {c} | {np.median(v):.3f} | {v.std(ddof=1):.3f} | {np.percentile(v, 5):.3f}–{np.percentile(v, 95):.3f} "
              f"| {int(df[c + ' inside'].sum())}/{len(df)} |")
    print(f"| all four inside | | | | {int(df[[c + ' inside' for c in values]].all(axis=1).sum())}/{len(df)} |")
    print(f"{time.perf_counter() - start:.0f} s wall ({jobs} processes)")


def figure(config_name: str = "config.yaml") -> None:
    from tissuefate.simulation.calibration import patients_figure

    config = yaml.safe_load((REPO / "config" / config_name).read_text())
    out = REPO / "docs" / "img" / "simulated_patients.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    patients_figure(config, out)
    print(out)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "speed"
    if mode == "figure":
        figure(sys.argv[2] if len(sys.argv) > 2 else "config.yaml")
    elif mode == "seeds":
        # seeds [config] [n_included] [n_seeds] [sampling]
        args = sys.argv[2:] + [None] * 4
        seeds(args[0] or "config.yaml", int(args[1] or 60), int(args[2] or 40), args[3] or "independent")
    elif mode == "calibrate":
        calibrate(sys.argv[2] if len(sys.argv) > 2 else "config.yaml", int(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        speed(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
