from tissuefate.jobs.cohort import cohort
from tissuefate.scripting import run

i, o = snakemake.input, snakemake.output
run(snakemake, lambda: cohort(i.reviews, i.participants, o.participants, o.table1, o.table1_md, o.flow))
