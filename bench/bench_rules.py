"""What each rule and stage of a finished run cost: wall s, CPU s, peak RSS, from the
`benchmark:` files Snakemake wrote and the jobs' own CPU accounts at the end of their logs
(tissuefate.reporting.costs).

    .venv/bin/python bench/bench_rules.py RUN_DIR [--benchmarks DIR] [--logs DIR] [--wall S --cpu S]

RUN_DIR is the folder the workflow ran in (it holds benchmarks/ or results/benchmarks/).
Give the run's own wall and CPU seconds (e.g. from `/usr/bin/time make demo`) to see how
much of it the jobs account for; the rest is Snakemake itself, start-up and waiting.
"""

import argparse
import os
from pathlib import Path

from tissuefate.reporting.costs import cost_table, markdown, read_benchmarks, rule_stages

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--benchmarks", type=Path, help="default: RUN_DIR/benchmarks or RUN_DIR/results/benchmarks")
    parser.add_argument("--logs", type=Path, help="the workflow's log folder (default: RUN_DIR/results/logs)")
    parser.add_argument("--wall", type=float, help="the whole run's wall seconds")
    parser.add_argument("--cpu", type=float, help="the whole run's CPU seconds (user + sys)")
    args = parser.parse_args()
    folder = args.benchmarks or next((p for p in (args.run_dir / "benchmarks", args.run_dir / "results/benchmarks")
                                      if p.is_dir()), None)
    if folder is None:
        raise SystemExit(f"no benchmarks/ folder in {args.run_dir}")
    jobs = read_benchmarks(folder, args.logs or args.run_dir / "results/logs")
    rules_dir = args.run_dir / "workflow/rules"
    jobs["stage"] = jobs["rule"].map(rule_stages(rules_dir if rules_dir.is_dir() else REPO / "workflow/rules"))
    jobs["stage"] = jobs["stage"].fillna("?")
    print(f"## Cost per rule ({len(jobs)} jobs, {folder})\n")
    print(markdown(cost_table(jobs, "rule")))
    print("## Cost per stage\n")
    print(markdown(cost_table(jobs, "stage")))
    if args.wall:
        cpu_jobs, wall_jobs = jobs["cpu_s"].sum(), jobs["wall_s"].sum()
        print(f"run: {args.wall:.0f} s wall" + (f", {args.cpu:.0f} CPU s" if args.cpu else "")
              + f"; jobs: {wall_jobs:.0f} job-wall s, {cpu_jobs:.0f} CPU s"
              + (f" ({100 * cpu_jobs / args.cpu:.0f} % of the run's CPU; the rest is Snakemake, "
                 "local rules without benchmarks and jobs without an account)" if args.cpu else "")
              + f"; {int(jobs['cpu_exact'].sum())} of {len(jobs)} jobs' CPU exact"
              + f"; load now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
