from pathlib import Path

from tissuefate.scripting import run
from tissuefate.stages import statistics_tables

run(snakemake, lambda: statistics_tables(snakemake.config, snakemake.input.per_case, snakemake.input.mismatch,
                                         Path(snakemake.output.summary).parent))
