from pathlib import Path

from tissuefate.scripting import run
from tissuefate.training import train_job

# The job's patients come from the rule's params (computed from the cohort table like splits.json).
wc = snakemake.wildcards
approach = wc.get("approach", "pretrain")
pretrained = snakemake.input.pretrained if approach == "pretraining" else None
run(snakemake, lambda: train_job(snakemake.config, None, Path(snakemake.output.model).parent,
                                 approach, wc.get("target"), int(wc["fold"]) if "fold" in wc.keys() else None,
                                 pretrained=pretrained, threads=snakemake.threads,
                                 patients=snakemake.params.patients))
