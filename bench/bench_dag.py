"""Seconds for `snakemake -n` (DAG construction and dry run) on a simulated cohort of N patients.

    .venv/bin/python bench/bench_dag.py 237 1000
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def dry_run_seconds(n_patients: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy2(REPO / "Snakefile", work / "Snakefile")
        for folder in ("workflow", "config", "envs"):
            shutil.copytree(REPO / folder, work / folder)
        config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
        excluded = sum(config["simulation"]["n_excluded"].values())
        config["simulation"]["n_included"] = max(n_patients - excluded, 1)
        (work / "bench.yaml").write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        proc = subprocess.run([SNAKEMAKE, "-n", "--quiet", "rules", "--configfile", "bench.yaml"],
                              cwd=work, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        total = [line for line in proc.stdout.splitlines() if line.startswith("total")]
        return seconds, total[0].split()[-1] if total else "?"


def main(sizes: list[int]) -> None:
    for n in sizes:
        seconds, jobs = dry_run_seconds(n)
        print(f"snakemake -n, {n} patients: {seconds:.1f} s ({jobs} jobs)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [237, 1000])
