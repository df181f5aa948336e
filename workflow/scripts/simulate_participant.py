from tissuefate.scripting import run
from tissuefate.simulation import simulate_participant

bids = snakemake.config["dataset"]["bids_dir"]
run(snakemake, lambda: simulate_participant(snakemake.config, bids, snakemake.wildcards.subject))
