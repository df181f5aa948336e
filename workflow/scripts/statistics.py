from tissuefate.jobs.evaluation import TABLE_TITLES, statistics
from tissuefate.scripting import run

o = snakemake.output
run(snakemake, lambda: statistics(snakemake.input.per_case, snakemake.input.mismatch, {t: getattr(o, t) for t in TABLE_TITLES},
                                  dict(zip(TABLE_TITLES, o.markdown)), snakemake.config["statistics"]))
