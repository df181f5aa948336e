from tissuefate.io.bids import perfusion_maps_dir
from tissuefate.scripting import run
from tissuefate.stages import review_to_json

bids = snakemake.config["dataset"]["bids_dir"]
# Provided maps (None) or the ones computed from raw DSC (perfusion.maps_source: computed).
maps_dir = perfusion_maps_dir(snakemake.config)
run(snakemake, lambda: review_to_json(bids, snakemake.wildcards.subject, snakemake.input.participants,
                                      snakemake.config, snakemake.output[0], maps_dir=maps_dir))
