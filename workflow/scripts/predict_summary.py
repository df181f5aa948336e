from tissuefate.predict_patient import summary_table
from tissuefate.scripting import run

run(snakemake, lambda: summary_table(snakemake.input, snakemake.output[0]))
