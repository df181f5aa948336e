from tissuefate.jobs.perfusion import perfusion_table
from tissuefate.scripting import run

p = snakemake.params
run(snakemake, lambda: perfusion_table(snakemake.input.maps, p.bids, snakemake.output[0], p.threshold_s))
