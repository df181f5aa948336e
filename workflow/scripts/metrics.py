from tissuefate.jobs.evaluation import metrics
from tissuefate.scripting import run

i, o = snakemake.input, snakemake.output
run(snakemake, lambda: metrics(i.cohort, i.splits[0], i.data, i.predictions, i.thresholding, o.per_case, o.mismatch,
                               snakemake.config["evaluation"]))
