from tissuefate.bundle import write_bundle
from tissuefate.scripting import run

config = snakemake.config
run(snakemake, lambda: write_bundle(config, config.get("results_dir", "results"), snakemake.output[0],
                                    labels=snakemake.params.patients, cohort_tsv=snakemake.input.cohort,
                                    summary_tsv=snakemake.input.summary))
