import os

from tissuefate.scripting import run

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(snakemake.threads)
from tissuefate.jobs.preprocessing import preprocess  # noqa: E402  (ITK reads its threads at import)

run(snakemake, lambda: preprocess(snakemake.wildcards.subject, snakemake.params.bids, snakemake.output[0],
                                  snakemake.config))
