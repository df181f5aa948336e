from pathlib import Path

from tissuefate.jobs.evaluation import rule_costs
from tissuefate.scripting import run

rules_dir = Path(snakemake.scriptdir).parent / "rules"
run(snakemake, lambda: rule_costs(snakemake.params.benchmarks, rules_dir,
                                  snakemake.output.rules, snakemake.output.stages,
                                  snakemake.params.logs))
