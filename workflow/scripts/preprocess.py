import os
from pathlib import Path

from tissuefate.io.bids import perfusion_maps_dir
from tissuefate.scripting import run

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(snakemake.threads)
from tissuefate.preprocessing.workflow import preprocess_participant  # noqa: E402

config = snakemake.config
# nipype runs each node in its own folder: give it absolute paths.
bids = Path(config["dataset"]["bids_dir"]).resolve()
results = Path(config.get("results_dir", "results")).resolve()
# Provided maps (None) or the ones computed from raw DSC (perfusion.maps_source: computed).
maps_dir = perfusion_maps_dir(config)
maps_dir = None if maps_dir is None else maps_dir.resolve()
run(snakemake, lambda: preprocess_participant(snakemake.wildcards.subject, bids, results, config, maps_dir=maps_dir))
