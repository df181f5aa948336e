from tissuefate.jobs.simulate import plan
from tissuefate.scripting import run

run(snakemake, lambda: plan(snakemake.config, snakemake.params.bids))
