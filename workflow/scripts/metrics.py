from pathlib import Path

from tissuefate.scripting import run
from tissuefate.stages import evaluate

run(snakemake, lambda: evaluate(snakemake.config, snakemake.input.splits[0], Path(snakemake.output.per_case).parent))
