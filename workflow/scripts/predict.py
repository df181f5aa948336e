from tissuefate.scripting import run
from tissuefate.stages import predict_fold

wc = snakemake.wildcards
run(snakemake, lambda: predict_fold(snakemake.config, snakemake.input.splits[0], snakemake.input.model, wc.approach,
                                    wc.target, int(wc.fold), snakemake.output.maps, snakemake.output.attention,
                                    threads=snakemake.threads))
