"""Per-rule cost tables from Snakemake benchmark files (tissuefate.reporting.costs)."""

import pytest

from tissuefate.reporting.costs import cost_table, markdown, read_benchmarks, rule_stages

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, s, rss, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_sums_per_rule_and_stage(tmp_path):
    root = tmp_path / "benchmarks"
    _bench(root / "preprocess/sub-001.tsv", 10.0, 500.0, 9.0)
    _bench(root / "preprocess/sub-002.tsv", 14.0, 700.5, 13.0)
    _bench(root / "train/pretraining/core/fold-1.tsv", 30.0, 1200.0, 55.0)
    (root / "train/pretraining/core/fold-2.tsv").write_text(HEADER + "0.4\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    jobs = read_benchmarks(root)
    assert sorted(jobs["job"]) == ["pretraining/core/fold-1", "pretraining/core/fold-2", "sub-001", "sub-002"]

    table = cost_table(jobs).set_index("rule")
    assert table.loc["preprocess", "jobs"] == 2
    assert table.loc["preprocess", "wall_s"] == pytest.approx(24.0)
    assert table.loc["preprocess", "median_wall_s"] == pytest.approx(12.0)
    assert table.loc["preprocess", "cpu_s"] == pytest.approx(22.0)
    assert table.loc["preprocess", "peak_rss_mb"] == pytest.approx(700.5)
    # an unmeasured job counts its wall time, not a zero CPU time or memory
    assert table.loc["train", "cpu_s"] == pytest.approx(55.0)
    assert table.loc["train", "cpu_per_wall"] == pytest.approx(55.0 / 30.4)
    assert table.loc["all", "jobs"] == 4 and table.loc["all", "cpu_s"] == pytest.approx(77.0)
    assert list(table.index[:2]) == ["train", "preprocess"]  # most CPU first

    jobs["stage"] = jobs["rule"].map({"preprocess": "preprocessing", "train": "training"})
    stages = cost_table(jobs, by="stage").set_index("stage")
    assert stages.loc["training", "wall_s"] == pytest.approx(30.4)
    text = markdown(cost_table(jobs))
    assert text.splitlines()[0].startswith("| rule | jobs | wall_s")
    assert "| preprocess | 2 | 24.0 | 12.0 | 22.0 | 0.92 | 700.5 | 0 |" in text


def test_rule_stages_are_the_rule_files(tmp_path):
    (tmp_path / "training.smk").write_text("rule splits:\n    output: 'x'\n\nrule train:\n    input: 'y'\n")
    (tmp_path / "cohort.smk").write_text("checkpoint cohort:\n    output: 'z'\n")
    assert rule_stages(tmp_path) == {"splits": "training", "train": "training", "cohort": "cohort"}


def test_workflow_rules_all_have_a_stage():
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    stages = rule_stages(rules)
    for name in ("preprocess", "train", "pretrain", "cohort", "thresholding"):
        assert name in stages, sorted(stages)


def test_rule_costs_job_writes_both_tables_and_skips_its_own(tmp_path):
    """The rule `costs` job: per-rule and per-stage tables from a benchmarks folder that also
    holds the tables of an earlier run at its top level (never read back as a job)."""
    import pandas as pd

    from tissuefate.jobs.evaluation import rule_costs

    root = tmp_path / "benchmarks"
    _bench(root / "preprocess/sub-001.tsv", 10.0, 500.0, 9.0)
    _bench(root / "train/pretraining/core/fold-1.tsv", 30.0, 1200.0, 55.0)
    (root / "rules.tsv").write_text("rule\tjobs\nstale\t99\n")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "preprocessing.smk").write_text("rule preprocess:\n    output: 'x'\n")
    (rules_dir / "training.smk").write_text("checkpoint train:\n    output: 'y'\n")
    rule_costs(root, rules_dir, root / "rules.tsv", root / "stages.tsv")
    by_rule = pd.read_csv(root / "rules.tsv", sep="\t").set_index("rule")
    assert list(by_rule.index) == ["train", "preprocess", "all"] and by_rule.loc["all", "jobs"] == 2
    assert by_rule.loc["all", "cpu_s"] == pytest.approx(64.0)
    stages = pd.read_csv(root / "stages.tsv", sep="\t").set_index("stage")
    assert stages.loc["training", "peak_rss_mb"] == pytest.approx(1200.0)
    assert stages.loc["preprocessing", "wall_s"] == pytest.approx(10.0)


def test_a_jobs_own_account_replaces_the_sampled_cpu_time(tmp_path):
    """Snakemake samples CPU time and misses a long job's end; the account at the end of the
    job's log (matched on rule and file stem) replaces it, the larger peak memory wins, and a job
    without one keeps its sample."""
    from tissuefate.reporting.costs import read_accounts

    root, logs = tmp_path / "benchmarks", tmp_path / "logs"
    _bench(root / "train/separate_core_fold-1.tsv", 40.0, 800.0, 14.5)  # sampled: half the job
    _bench(root / "preprocess/sub-001.tsv", 10.0, 300.0, 9.0)
    _bench(root / "preprocess/sub-002.tsv", 10.0, 300.0, 9.5)
    (logs / "training").mkdir(parents=True)
    (logs / "preprocessing").mkdir()
    (logs / "training/separate_core_fold-1.log").write_text(
        "2026-12-08 epoch 1/6\ntissuefate.cost rule=train cpu_s=39.250 max_rss_mb=812.5\n")
    # a rerun of the job rewrites its log: an older account above the last one does not count
    (logs / "preprocessing/sub-001.log").write_text(
        "tissuefate.cost rule=preprocess cpu_s=99.0 max_rss_mb=1.0\nregistered\n"
        "tissuefate.cost rule=preprocess cpu_s=10.125 max_rss_mb=250.0\n")
    (logs / "preprocessing/sub-002.log").write_text("failed before the end: no account\n")
    (logs / "preprocessing/sub-003.log").write_text("tissuefate.cost rule=thresholding cpu_s=1.0 max_rss_mb=1.0\n")

    accounts = read_accounts(logs).set_index("job")
    assert accounts.loc["sub-001", "cpu_s"] == pytest.approx(10.125)
    assert "sub-002" not in accounts.index

    jobs = read_benchmarks(root, logs).set_index("job")
    assert jobs.loc["separate_core_fold-1", "cpu_s"] == pytest.approx(39.25)
    assert jobs.loc["separate_core_fold-1", "max_rss_mb"] == pytest.approx(812.5)
    assert jobs.loc["sub-001", "cpu_s"] == pytest.approx(10.125)
    assert jobs.loc["sub-001", "max_rss_mb"] == pytest.approx(300.0)
    assert jobs.loc["sub-002", "cpu_s"] == pytest.approx(9.5) and not jobs.loc["sub-002", "cpu_exact"]
    table = cost_table(jobs.reset_index()).set_index("rule")
    assert table.loc["preprocess", "exact_cpu_jobs"] == 1 and table.loc["all", "exact_cpu_jobs"] == 2
    assert table.loc["all", "cpu_s"] == pytest.approx(39.25 + 10.125 + 9.5)
    # without the log folder: Snakemake's samples, as before
    assert read_benchmarks(root)["cpu_s"].sum() == pytest.approx(33.0)


JOB_SCRIPT = """
import subprocess, sys, time
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Snakemake, Wildcards
from tissuefate.scripting import run

def work():
    deadline = time.process_time() + 0.6
    while time.process_time() < deadline:  # 0.6 CPU s in this process
        pass
    # and 0.4 CPU s in a child process, as ANTs or a shell command would use
    subprocess.run([sys.executable, "-c",
                    "import time\\nd = time.process_time() + 0.4\\nwhile time.process_time() < d: pass"],
                   check=True)

# the object Snakemake hands a rule's script (snakemake.iocontainers.Snakemake)
snakemake = Snakemake(InputFiles(), OutputFiles(), Params(), Wildcards(), 1, ResourceList(), Log([sys.argv[1]]),
                      {}, "preprocess", None, ".")
run(snakemake, work)
"""


def test_every_finished_job_ends_its_log_with_its_exact_cpu_account(tmp_path):
    """The account is getrusage of the job's process and its children: checked against what the
    parent sees the job's process tree use (RUSAGE_CHILDREN around it)."""
    import resource
    import subprocess
    import sys

    from tissuefate.reporting.costs import read_accounts

    script, log = tmp_path / "job.py", tmp_path / "sub-001.log"
    script.write_text(JOB_SCRIPT)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, str(script), str(log)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    last = log.read_text().splitlines()[-1]
    assert last.startswith("tissuefate.cost rule=preprocess cpu_s=")
    account = read_accounts(tmp_path).set_index("job").loc["sub-001"]
    assert account["cpu_s"] >= 1.0  # the process's 0.6 s and the child's 0.4 s (and start-up)
    assert used - 0.15 <= account["cpu_s"] <= used  # all but the interpreter's exit
    assert 5.0 < account["max_rss_mb"] < 2000.0
