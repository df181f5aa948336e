from pathlib import Path

from tissuefate.scripting import run
from tissuefate.stages import cohort_from_reviews

run(snakemake, lambda: cohort_from_reviews(snakemake.input.reviews, snakemake.input.participants,
                                           Path(snakemake.output.participants).parent))
