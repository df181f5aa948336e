from tissuefate.scripting import run
from tissuefate.thresholding import threshold_participant

config = snakemake.config
run(snakemake, lambda: threshold_participant(snakemake.wildcards.subject, config.get("results_dir", "results"), config))
