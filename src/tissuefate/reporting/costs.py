"""What each rule of the workflow costs, from Snakemake's own `benchmark:` files.

Every rule that does real work writes ``<benchmarks>/<rule>/<job>.tsv`` (Snakemake measures
wall seconds ``s``, CPU seconds ``cpu_time`` and peak resident memory ``max_rss`` in MB of
the job's processes). These functions add them up per rule and per stage (the rule file
the rule is defined in), for BENCHMARKS.md and the report.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

RULE_RE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)


def rule_stages(rules_dir: Path) -> dict[str, str]:
    """Rule name -> stage, the stem of the rule file that defines it (workflow/rules/*.smk)."""
    stages = {}
    for smk in sorted(Path(rules_dir).glob("*.smk")):
        for name in RULE_RE.findall(smk.read_text()):
            stages[name] = smk.stem
    return stages


def read_benchmarks(root: Path) -> pd.DataFrame:
    """One row per job: rule, job (its file below the rule's folder), wall_s, cpu_s, max_rss_mb.

    Snakemake writes NA when a job ended before it could measure anything (e.g. under a
    second); those values stay missing rather than counting as zero.
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
            })
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "cpu_s", "max_rss_mb"])


def cost_table(jobs: pd.DataFrame, by: str = "rule") -> pd.DataFrame:
    """Jobs, total and median wall seconds, total CPU seconds, CPU/wall and peak RSS per `by`,
    most expensive (total CPU) first, with an 'all' row."""
    if jobs.empty:
        return pd.DataFrame(columns=[by, "jobs", "wall_s", "median_wall_s", "cpu_s", "cpu_per_wall",
                                     "peak_rss_mb"])
    grouped = jobs.groupby(by, sort=False)
    table = pd.DataFrame({
        "jobs": grouped.size(),
        "wall_s": grouped["wall_s"].sum(),
        "median_wall_s": grouped["wall_s"].median(),
        "cpu_s": grouped["cpu_s"].sum(min_count=1),
        "peak_rss_mb": grouped["max_rss_mb"].max(),
    })
    table = table.sort_values(["cpu_s", "wall_s"], ascending=False)
    total = pd.DataFrame({
        "jobs": [len(jobs)], "wall_s": [jobs["wall_s"].sum()],
        "median_wall_s": [jobs["wall_s"].median()], "cpu_s": [jobs["cpu_s"].sum(min_count=1)],
        "peak_rss_mb": [jobs["max_rss_mb"].max()]}, index=["all"])
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
