from tissuefate.jobs.cohort import describe_results
from tissuefate.scripting import run

run(snakemake, lambda: describe_results(snakemake.output[0], snakemake.params.bids))
