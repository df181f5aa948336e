from tissuefate.jobs.prediction import predict_fold
from tissuefate.scripting import run

# The fold's test patients come from the rule's params (computed from the cohort table like splits.json).
wc, i, o = snakemake.wildcards, snakemake.input, snakemake.output
run(snakemake, lambda: predict_fold(snakemake.params.patients, i.model, i.data, snakemake.params.bids, wc.approach,
                                    wc.target, int(wc.fold), o.maps, o.attention, threads=snakemake.threads))
