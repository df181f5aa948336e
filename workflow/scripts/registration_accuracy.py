from tissuefate.scripting import run
from tissuefate.stages import registration_table

run(snakemake, lambda: registration_table(snakemake.config, snakemake.output[0]))
