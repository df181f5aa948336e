from pathlib import Path

from tissuefate.scripting import run
from tissuefate.training import train_job

wc = snakemake.wildcards
approach = wc.get("approach", "pretrain")
pretrained = snakemake.input.pretrained if approach == "pretraining" else None
run(snakemake, lambda: train_job(snakemake.config, snakemake.input.splits[0], Path(snakemake.output.model).parent,
                                 approach, wc.get("target"), int(wc["fold"]) if "fold" in wc.keys() else None,
                                 pretrained=pretrained, threads=snakemake.threads))
