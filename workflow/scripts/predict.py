from tissuefate.scripting import run
from tissuefate.stages import predict_fold

# The fold's test patients come from the rule's params (computed from the cohort table like splits.json).
wc = snakemake.wildcards
run(snakemake, lambda: predict_fold(snakemake.config, snakemake.params.patients, snakemake.input.model, wc.approach,
                                    wc.target, int(wc.fold), snakemake.output.maps, snakemake.output.attention,
                                    threads=snakemake.threads))
