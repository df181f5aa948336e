from tissuefate.jobs.preprocessing import registration_table
from tissuefate.scripting import run

run(snakemake, lambda: registration_table(snakemake.input.preprocessed, snakemake.params.bids, snakemake.output[0]))
