from tissuefate.jobs.evaluation import rule_costs
from tissuefate.scripting import run

run(snakemake, lambda: rule_costs(snakemake.params.benchmarks, snakemake.params.rules_dir,
                                  snakemake.output.rules, snakemake.output.stages))
