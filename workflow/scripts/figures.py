from tissuefate.jobs.evaluation import figures
from tissuefate.scripting import run

i = snakemake.input
run(snakemake, lambda: figures(i.per_case, i.mismatch, i.splits[0], i.data, i.predictions, i.thresholding,
                               snakemake.output[0], snakemake.config["evaluation"]["probability_threshold"]))
