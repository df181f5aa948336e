from tissuefate.scripting import run
from tissuefate.stages import review_to_json

bids = snakemake.config["dataset"]["bids_dir"]
run(snakemake, lambda: review_to_json(bids, snakemake.wildcards.subject, snakemake.input.participants,
                                      snakemake.config, snakemake.output[0]))
