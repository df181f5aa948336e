from tissuefate.scripting import run
from tissuefate.splits import write_splits

config = snakemake.config
run(snakemake, lambda: write_splits(snakemake.input.cohort, snakemake.output[0], config["seed"], **config.get("splits", {})))
