from tissuefate.jobs.simulate import participant
from tissuefate.scripting import run

run(snakemake, lambda: participant(snakemake.config, snakemake.params.bids, snakemake.wildcards.subject))
