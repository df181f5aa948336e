"""What each rule of the workflow costs, from Snakemake's own `benchmark:` files and the
jobs' own CPU accounts.

Every rule that does real work writes ``<benchmarks>/<rule>/<job>.tsv`` (Snakemake measures
wall seconds ``s``, CPU seconds ``cpu_time`` and peak resident memory ``max_rss`` in MB of
the job's processes). Snakemake *samples* the CPU time (every 0.5 s for a job's first 15 s,
then every 30 s) and misses what a job does after its last sample, so every finished job
also ends its log with its exact account (``tissuefate.cost rule=... cpu_s=... max_rss_mb=...``,
tissuefate.scripting); where a benchmark file's job has one (same rule, same file stem), the
account's CPU seconds replace the sampled ones. These functions add them up per rule and per
stage (the rule file the rule is defined in), for BENCHMARKS.md and the report.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from tissuefate.scripting import ACCOUNT_PREFIX

RULE_RE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
ACCOUNT_RE = re.compile(rf"^{re.escape(ACCOUNT_PREFIX)} rule=(\w+) cpu_s=([0-9.]+) max_rss_mb=([0-9.]+)\s*$",
                        re.MULTILINE)


def rule_stages(rules_dir: Path) -> dict[str, str]:
    """Rule name -> stage, the stem of the rule file that defines it (workflow/rules/*.smk)."""
    stages = {}
    for smk in sorted(Path(rules_dir).glob("*.smk")):
        for name in RULE_RE.findall(smk.read_text()):
            stages[name] = smk.stem
    return stages


def read_accounts(logs: Path) -> pd.DataFrame:
    """One row per job log below ``logs`` that ends with the job's CPU account: rule, job (the
    log's file stem), cpu_s, max_rss_mb. A log holds one run of its job (it is rewritten on
    every run), so its last account is the one that counts."""
    rows = []
    for log in sorted(Path(logs).rglob("*.log")):
        with open(log, "rb") as handle:  # the account is the last line: read the tail only
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 4096))
            tail = handle.read().decode("utf-8", "replace")
        found = ACCOUNT_RE.findall(tail)
        if found:
            rule, cpu, rss = found[-1]
            rows.append({"rule": rule, "job": log.stem, "cpu_s": float(cpu), "max_rss_mb": float(rss)})
    return pd.DataFrame(rows, columns=["rule", "job", "cpu_s", "max_rss_mb"])


def read_benchmarks(root: Path, logs: Path | None = None) -> pd.DataFrame:
    """One row per job: rule, job (its file below the rule's folder), wall_s, cpu_s, max_rss_mb,
    cpu_exact.

    Snakemake writes NA when a job ended before it could measure anything (e.g. under a
    second); those values stay missing rather than counting as zero. With ``logs`` (the
    workflow's log folder), a job whose log ends with its own account (:func:`read_accounts`;
    matched on rule and file stem) takes its CPU seconds from there (``cpu_exact`` True) and
    the larger of the two peak memories.
    """
    rows = []
    root = Path(root)
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        if len(rel.parts) < 2:
            continue
        table = pd.read_csv(tsv, sep="\t", na_values=["NA", "-"])
        for _, rec in table.iterrows():  # one row per benchmark repeat
            rows.append({
                "rule": rel.parts[0],
                "job": str(Path(*rel.parts[1:]).with_suffix("")),
                "wall_s": float(rec["s"]),
                "cpu_s": float(rec["cpu_time"]) if "cpu_time" in rec else float("nan"),
                "max_rss_mb": float(rec["max_rss"]) if "max_rss" in rec else float("nan"),
                "cpu_exact": False,
            })
    jobs = pd.DataFrame(rows, columns=["rule", "job", "wall_s", "cpu_s", "max_rss_mb", "cpu_exact"])
    if logs is not None and Path(logs).is_dir() and not jobs.empty:
        accounts = {(a.rule, a.job): a for a in read_accounts(logs).itertuples(index=False)}
        for i, (rule, job) in enumerate(zip(jobs["rule"], jobs["job"])):
            account = accounts.get((rule, Path(job).name))
            if account is not None:
                jobs.loc[i, "cpu_s"] = account.cpu_s
                jobs.loc[i, "max_rss_mb"] = max(account.max_rss_mb, jobs.loc[i, "max_rss_mb"])
                jobs.loc[i, "cpu_exact"] = True
    jobs["cpu_exact"] = jobs["cpu_exact"].astype(bool)
    return jobs


def cost_table(jobs: pd.DataFrame, by: str = "rule") -> pd.DataFrame:
    """Jobs, total and median wall seconds, total CPU seconds, CPU/wall, peak RSS and how many
    jobs' CPU seconds are their exact account (the others are Snakemake's samples) per `by`,
    most expensive (total CPU) first, with an 'all' row."""
    if jobs.empty:
        return pd.DataFrame(columns=[by, "jobs", "wall_s", "median_wall_s", "cpu_s", "cpu_per_wall",
                                     "peak_rss_mb", "exact_cpu_jobs"])
    jobs = jobs.assign(cpu_exact=jobs["cpu_exact"].astype(int))
    grouped = jobs.groupby(by, sort=False)
    table = pd.DataFrame({
        "jobs": grouped.size(),
        "wall_s": grouped["wall_s"].sum(),
        "median_wall_s": grouped["wall_s"].median(),
        "cpu_s": grouped["cpu_s"].sum(min_count=1),
        "peak_rss_mb": grouped["max_rss_mb"].max(),
        "exact_cpu_jobs": grouped["cpu_exact"].sum(),
    })
    table = table.sort_values(["cpu_s", "wall_s"], ascending=False)
    total = pd.DataFrame({
        "jobs": [len(jobs)], "wall_s": [jobs["wall_s"].sum()],
        "median_wall_s": [jobs["wall_s"].median()], "cpu_s": [jobs["cpu_s"].sum(min_count=1)],
        "peak_rss_mb": [jobs["max_rss_mb"].max()], "exact_cpu_jobs": [int(jobs["cpu_exact"].sum())]},
        index=["all"])
    table = pd.concat([table, total])
    table.insert(4, "cpu_per_wall", table["cpu_s"] / table["wall_s"])
    return table.rename_axis(by).reset_index()


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table with fixed decimals (no dependency on `tabulate`)."""
    def fmt(value) -> str:
        if isinstance(value, float):
            return "–" if pd.isna(value) else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for rec in table.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in rec) + " |")
    return "\n".join(lines) + "\n"
