from tissuefate.jobs.preprocessing import threshold
from tissuefate.scripting import run

run(snakemake, lambda: threshold(snakemake.input[0], dict(snakemake.output.items()), snakemake.config))
