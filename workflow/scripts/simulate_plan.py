from tissuefate.scripting import run
from tissuefate.simulation import write_plan

run(snakemake, lambda: write_plan(snakemake.config, snakemake.config["dataset"]["bids_dir"]))
