from tissuefate.scripting import run
from tissuefate.stages import perfusion_table

sessions = [tuple(x.split(":")) for x in snakemake.params.sessions]
run(snakemake, lambda: perfusion_table(snakemake.config, sessions, snakemake.output[0]))
