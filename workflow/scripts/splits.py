from tissuefate.jobs.training import splits
from tissuefate.scripting import run

config = snakemake.config
run(snakemake, lambda: splits(snakemake.input.cohort, snakemake.output[0], config["seed"], config["splits"]))
