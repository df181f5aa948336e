"""Seconds to simulate one patient, at the demo's and the paper's resolution.

    .venv/bin/python bench/bench_simulation.py [n_patients]
"""

import copy
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tissuefate.simulation import participant_labels, simulate_participant, write_plan
from tissuefate.simulation.anatomy import load_anatomy

REPO = Path(__file__).resolve().parents[1]


def main(n: int = 5) -> None:
    for name in ("config.yaml", "paper.yaml"):
        config = yaml.safe_load((REPO / "config" / name).read_text())
        load_anatomy(config["simulation"]["mni_resolution_mm"])  # template loading is once per job
        with tempfile.TemporaryDirectory() as tmp:
            write_plan(config, tmp)
            labels = participant_labels(config["simulation"])[:n]
            start = time.perf_counter()
            for label in labels:
                simulate_participant(config, tmp, label)
            per = (time.perf_counter() - start) / len(labels)
        sim = config["simulation"]
        print(f"{name}: {per:.2f} s per patient (MNI grid {sim['mni_resolution_mm']} mm, "
              f"native {sim['native_resolution_mm']} mm, {len(labels)} patients)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
