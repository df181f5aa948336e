from tissuefate.scripting import run
from tissuefate.stages import result_figures

run(snakemake, lambda: result_figures(snakemake.config, snakemake.input.per_case, snakemake.input.mismatch,
                                      snakemake.input.splits[0], snakemake.output[0]))
