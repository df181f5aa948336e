"""Seconds for `snakemake -n` (DAG construction and dry run) for a cohort of N patients.

    .venv/bin/python bench/bench_dag.py 237 1000
    .venv/bin/python bench/bench_dag.py --profile 1000     # also cProfile the full-DAG dry run

Two measurements per N, each in a temporary folder holding a copy of the workflow
(Snakefile, workflow/, config/, envs/):

- from scratch: config/paper.yaml in simulate mode with N reviewed patients in all. Nothing
  exists yet, so the DAG ends at the cohort checkpoint (simulate, review, cohort jobs).
- full DAG: real-data mode (``dataset.simulate: false``) over config/config.yaml (5 folds), a
  BIDS tree of N participants (empty files named as the simulator names them, raw DSC series
  included, so every input function lists its 26 files; plus each participant's folder of the
  simulator's truth) and the cohort checkpoint already complete for them (cohort
  table, Table 1, flow chart and one review JSON per patient, all newer than the BIDS files).
  Snakemake then plans everything after the checkpoint: preprocess and thresholding per
  patient, splits, pretrain, 4 x n_folds train and predict, metrics, statistics, figures,
  registration_accuracy. All N patients are included, in the paper's reperfusion-group
  proportions (52/57/80/48 of 237 minimal/partial/major/unknown).

Times are of the `snakemake` process (interpreter start-up included): wall seconds, and CPU
seconds (user + system), which a loaded machine inflates far less than the wall time.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

# The paper's included patients per reperfusion group (METHOD.md section 3).
GROUP_COUNTS = {"minimal": 52, "partial": 57, "major": 80, "unknown": 48}
FRACTION_OTHER_FOLLOWUP = 0.12
SEED = 20210401

# One participant's files, as the simulator names them (src/tissuefate/io/bids.py).
RAW_FILES = [
    *(f"ses-baseline/dwi/sub-{{s}}_ses-baseline_{name}.{ext}"
      for name in ("acq-b0_dwi", "acq-b1000_dwi", "adc") for ext in ("nii.gz", "json")),
    *(f"ses-baseline/perf/sub-{{s}}_ses-baseline_{name}.{ext}"
      for name in ("Tmax", "MTT", "CBF", "CBV") for ext in ("nii.gz", "json")),
    *(f"ses-followup/perf/sub-{{s}}_ses-followup_Tmax.{ext}" for ext in ("nii.gz", "json")),
    *(f"ses-{session}/perf/sub-{{s}}_ses-{session}_dsc.{ext}"
      for session in ("baseline", "followup") for ext in ("nii.gz", "json")),
    *(f"ses-final/anat/sub-{{s}}_ses-final_FLAIR.{ext}" for ext in ("nii.gz", "json")),
]
LESION_FILES = [f"ses-final/anat/sub-{{s}}_ses-final_desc-infarct_mask.{ext}" for ext in ("nii.gz", "json")]
# The simulator's truth per participant (a folder; rule registration_accuracy reads it).
TRUTH_FILE = "sub-{s}_desc-truth_transform.json"


def copy_workflow(work: Path) -> None:
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    for folder in ("workflow", "config", "envs"):
        shutil.copytree(REPO / folder, work / folder)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_dry(work: Path, configfile: str) -> tuple[tuple[float, float], dict[str, int]]:
    """(wall, CPU) seconds of `snakemake -n` in ``work`` and the job count per rule of its Job stats.

    The CPU seconds (user + system of the snakemake process) barely depend on what else runs on
    the machine; the wall seconds do.
    """
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, "-n", "--quiet", "rules", "--configfile", configfile],
                          cwd=work, capture_output=True, text=True)
    seconds = (time.perf_counter() - start, _children_cpu() - cpu)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-3000:])
    return seconds, job_stats(proc.stdout + proc.stderr)


def job_stats(text: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: count}, with 'total'."""
    counts: dict[str, int] = {}
    lines = text.splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    except StopIteration:
        return counts
    for line in lines[first + 1:]:
        match = re.match(r"^(\S+)\s+(\d+)\s*$", line)
        if match:
            counts[match.group(1)] = int(match.group(2))
            if match.group(1) == "total":
                break
    return counts


def from_scratch(n_patients: int) -> tuple[tuple[float, float], dict[str, int]]:
    """Simulate mode, nothing on disk: the DAG up to the cohort checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy_workflow(work)
        config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
        excluded = sum(config["simulation"]["n_excluded"].values())
        config["simulation"]["n_included"] = max(n_patients - excluded, 1)
        (work / "bench.yaml").write_text(yaml.safe_dump(config))
        return run_dry(work, "bench.yaml")


def cohort_table(n_patients: int) -> pd.DataFrame:
    """A cohort table of N included patients in the paper's group proportions."""
    width = max(3, len(str(n_patients)))
    ids = [f"sub-{i + 1:0{width}d}" for i in range(n_patients)]
    weights = np.array(list(GROUP_COUNTS.values()), dtype=float)
    counts = np.floor(weights / weights.sum() * n_patients).astype(int)
    counts[np.argmax(weights)] += n_patients - counts.sum()
    groups = np.repeat(list(GROUP_COUNTS), counts)
    rng = np.random.default_rng(SEED)
    rng.shuffle(groups)
    followup = rng.random(n_patients) >= FRACTION_OTHER_FOLLOWUP
    return pd.DataFrame({
        "participant_id": ids,
        "included": True,
        "exclusion_reason": "n/a",
        "site": [f"site{'ABC'[i % 3]}" for i in range(n_patients)],
        "reperfusion_group": groups,
        "has_followup_3to7d": followup,
    })


def _touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, (mtime, mtime))


def checkpoint_state(work: Path, n_patients: int) -> Path:
    """BIDS tree of N participants and the cohort checkpoint's outputs, complete; returns bids/."""
    bids = work / "bids"
    cohort = cohort_table(n_patients)
    t_bids = time.time() - 3600
    t_review, t_cohort = t_bids + 600, t_bids + 1200

    bids.mkdir()
    clinical = pd.DataFrame({"participant_id": cohort["participant_id"], "site": cohort["site"],
                             "ischemic_stroke_confirmed": "yes", "pwi_quality": "good"})
    clinical.to_csv(bids / "participants.tsv", sep="\t", index=False)
    os.utime(bids / "participants.tsv", (t_bids, t_bids))
    for name in ("dataset_description.json", "derivatives/lesions/dataset_description.json",
                 # Present in a simulated dataset: the workflow adds registration_accuracy then.
                 "derivatives/simulation/dataset_description.json"):
        _touch(bids / name, t_bids)

    results = work / "results" / "cohort"
    for pid in cohort["participant_id"]:
        label = pid.removeprefix("sub-")
        for rel in RAW_FILES:
            _touch(bids / pid / rel.format(s=label), t_bids)
        for rel in LESION_FILES:
            _touch(bids / "derivatives" / "lesions" / pid / rel.format(s=label), t_bids)
        _touch(bids / "derivatives" / "simulation" / pid / TRUTH_FILE.format(s=label), t_bids)
        review = results / pid / f"{pid}_review.json"
        review.parent.mkdir(parents=True, exist_ok=True)
        review.write_text("{}\n")
        os.utime(review, (t_review, t_review))

    for folder, _, _ in os.walk(bids):
        # A folder's mtime is that of its last change: as old as its files in a real dataset.
        os.utime(folder, (t_bids, t_bids))

    cohort.to_csv(results / "participants.tsv", sep="\t", index=False)
    for name in ("table1.tsv", "table1.md", "flow.png"):
        (results / name).touch()
    for name in ("participants.tsv", "table1.tsv", "table1.md", "flow.png"):
        os.utime(results / name, (t_cohort, t_cohort))
    return bids


def full_dag(n_patients: int, profile: bool = False) -> tuple[tuple[float, float], dict[str, int]]:
    """Real-data mode with the cohort checkpoint complete: the DAG of the whole study."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy_workflow(work)
        bids = checkpoint_state(work, n_patients)
        (work / "bench.yaml").write_text(yaml.safe_dump({"dataset": {"simulate": False, "bids_dir": str(bids)}}))
        seconds, stats = run_dry(work, "bench.yaml")
        check_full_dag(stats, n_patients)
        if profile:
            profile_dry_run(work, "bench.yaml")
        return seconds, stats


def check_full_dag(stats: dict[str, int], n_patients: int) -> None:
    """The checkpoint counts as done and every later job is planned."""
    n_folds = int(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["splits"]["n_folds"])
    expected = {"preprocess": n_patients, "thresholding": n_patients, "pretrain": 1,
                "train": 4 * n_folds, "predict": 4 * n_folds, "splits": 1, "metrics": 1,
                "statistics": 1, "figures": 1, "registration_accuracy": 1, "all": 1}
    problems = [f"{rule}: {stats.get(rule, 0)} jobs, {count} expected"
                for rule, count in expected.items() if stats.get(rule, 0) != count]
    problems += [f"{rule}: {stats[rule]} jobs planned, the checkpoint should be complete"
                 for rule in ("review_participant", "cohort") if rule in stats]
    if problems:
        raise SystemExit("full DAG not as expected:\n  " + "\n  ".join(problems) + f"\n{stats}")


def profile_dry_run(work: Path, configfile: str, top: int = 25) -> None:
    """cProfile of the same dry run (in a subprocess); prints the top functions by cumulative time."""
    out = work / "dry.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), SNAKEMAKE, "-n", "--quiet", "rules",
                    "--configfile", configfile], cwd=work, capture_output=True, text=True, check=True)
    import pstats

    stats = pstats.Stats(str(out))
    print(f"\n--- cProfile of the full-DAG dry run (top {top} by cumulative time) ---")
    stats.sort_stats("cumulative").print_stats(top)
    print("--- input functions of workflow/rules/common.smk and what they call ---")
    stats.print_stats(r"common\.smk|splits\.py|cohort\.py|_files_under|read_csv")


def main(argv: list[str]) -> None:
    profile = "--profile" in argv
    sizes = [int(a) for a in argv if a != "--profile"] or [237, 1000]
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
    rows = []
    for n in sizes:
        scratch_s, scratch = from_scratch(n)
        full_s, full = full_dag(n, profile=profile)
        rows.append((n, scratch_s, scratch.get("total", 0), full_s, full))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
    print("| patients | DAG | jobs | wall s | CPU s |")
    print("|---|---|---|---|---|")
    for n, scratch_s, scratch_jobs, full_s, full in rows:
        print(f"| {n} | from scratch, to the checkpoint | {scratch_jobs} | {scratch_s[0]:.1f} | {scratch_s[1]:.1f} |")
        print(f"| {n} | full, checkpoint done | {full.get('total', 0)} | {full_s[0]:.1f} | {full_s[1]:.1f} |")
    for n, *_, full in rows:
        per_rule = ", ".join(f"{rule} {count}" for rule, count in full.items() if rule != "total")
        print(f"full DAG, {n} patients, jobs per rule: {per_rule}")


if __name__ == "__main__":
    main(sys.argv[1:])
