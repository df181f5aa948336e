from tissuefate.jobs.cohort import review
from tissuefate.scripting import run

run(snakemake, lambda: review(snakemake.params.bids, snakemake.wildcards.subject, snakemake.input.participants,
                              snakemake.config, snakemake.output[0]))
