from tissuefate.jobs.training import train
from tissuefate.names import PRETRAIN, PRETRAINING
from tissuefate.scripting import run

# The job's patients come from the rule's params (computed from the cohort table like splits.json).
wc, i = snakemake.wildcards, snakemake.input
approach = wc.get("approach", PRETRAIN)
fold = int(wc["fold"]) if "fold" in wc.keys() else None
pretrained = i.pretrained if approach == PRETRAINING else None
run(snakemake, lambda: train(snakemake.config, snakemake.params.patients, i.data, snakemake.output.model, approach,
                             wc.get("target"), fold, pretrained=pretrained, threads=snakemake.threads))
