from tissuefate.perfusion import compute_perfusion_maps
from tissuefate.scripting import run

p = snakemake.params
run(snakemake, lambda: compute_perfusion_maps(p.dsc, snakemake.output[0], settings=p.settings,
                                              participant=snakemake.wildcards.subject))
