"""Wall seconds of one study run locally and through Slurm, on the same machine, one after the other.

    bash .ci/slurm/setup.sh                       # or any Slurm cluster the profile reaches
    .venv/bin/python bench/bench_slurm.py [--configfile config/ci.yaml] [--keep DIR]

The Slurm run gets the settings of the CI end-to-end test (tests/test_slurm.py) unless the
environment sets them: status polls every 3 s (``TISSUEFATE_SLURM_INIT_SECONDS``,
``TISSUEFATE_SLURM_STATUS_INTERVAL``, ``TISSUEFATE_SLURM_MAX_STATUS_INTERVAL``), 5 s latency wait, and 6 patients per bundled job, so
the CI cohort's 24 patients make 4 bundles for the 2 CPUs. (With the profile's default of 20
patients a job, one bundle works through 20 patients one after another while the other CPU
idles: on 2 December the Slurm run took 997 s that way, 755 s with 6; BENCHMARKS.md.)

Both runs are the same command on the same config, each in a fresh folder holding a copy of
the workflow (Snakefile, workflow/, config/, profiles/, envs/), the cohort simulated inside the
workflow in both:

- local: ``snakemake --cores 2 --max-jobs-per-timespan 1000/10s --configfile C`` (as ``make demo``);
- Slurm: ``snakemake --profile profiles/slurm --configfile C`` (as README's cluster section).

Printed per run: wall seconds of the ``snakemake`` process, its steps, and the load average
before and after; then the ratio Slurm / local and whether every ``results/**/*.tsv`` is the
same byte for byte. The Slurm run's wall time is mostly waiting (job start-up, status polls,
job steps), so run it on a quiet machine and read one pair as one pair.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CI_SLURM_ENV = {
    "TISSUEFATE_SLURM_INIT_SECONDS": "3",
    "TISSUEFATE_SLURM_STATUS_INTERVAL": "3",
    "TISSUEFATE_SLURM_MAX_STATUS_INTERVAL": "3",
    "TISSUEFATE_SLURM_LATENCY_WAIT": "5",
    "TISSUEFATE_SLURM_PATIENTS_PER_JOB": "6",
}


def copy_workflow(dst: Path) -> Path:
    dst.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    for folder in ("workflow", "config", "profiles", "envs"):
        shutil.copytree(REPO / folder, dst / folder, symlinks=False)
    return dst


def run(name: str, workdir: Path, args: list[str]) -> dict:
    env = {**CI_SLURM_ENV, **os.environ, "PYTHONPATH": str(REPO / "src")}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, *args], cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    (workdir / f"{name}.log").write_text(log)
    if proc.returncode != 0:
        sys.exit(f"the {name} run failed (rc {proc.returncode}); log: {workdir / f'{name}.log'}\n{log[-3000:]}")
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    return {"run": name, "wall_s": round(wall, 1), "steps": steps[-1][1] if steps else "?",
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def tables(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted((root / "results").rglob("*.tsv"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", default="config/ci.yaml")
    ap.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    a = ap.parse_args()
    if shutil.which("sbatch") is None:
        sys.exit("sbatch is not on PATH: start a Slurm cluster first (bash .ci/slurm/setup.sh)")
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench_slurm."))
    try:
        local = copy_workflow(root / "local")
        cluster = copy_workflow(root / "slurm")
        rows = [run("local", local, ["--cores", "2", "--max-jobs-per-timespan", "1000/10s",
                                     "--configfile", a.configfile]),
                run("slurm", cluster, ["--profile", "profiles/slurm", "--configfile", a.configfile])]
        lt, ct = tables(local), tables(cluster)
        same = sorted(lt) == sorted(ct) and all(filecmp.cmp(lt[k], ct[k], shallow=False) for k in lt)
        print("| run | wall s | steps | load before | load after |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['run']} | {r['wall_s']} | {r['steps']} | {r['load_before']} | {r['load_after']} |")
        print(f"Slurm / local: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}; "
              f"{len(lt)} tables, {'all identical' if same else 'SOME DIFFER'}; config {a.configfile}; "
              f"host {os.uname().nodename}, {os.cpu_count()} CPUs")
        print("Slurm settings: " + ", ".join(f"{k}={os.environ.get(k, v)}" for k, v in CI_SLURM_ENV.items()))
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
