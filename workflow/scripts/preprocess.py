import os
from pathlib import Path

from tissuefate.scripting import run

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(snakemake.threads)
from tissuefate.preprocessing.workflow import preprocess_participant  # noqa: E402

config = snakemake.config
# nipype runs each node in its own folder: give it absolute paths.
bids = Path(config["dataset"]["bids_dir"]).resolve()
results = Path(config.get("results_dir", "results")).resolve()
run(snakemake, lambda: preprocess_participant(snakemake.wildcards.subject, bids, results, config))
