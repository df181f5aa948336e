from tissuefate.predict_patient import PatientMaps, predict_patient
from tissuefate.scripting import run

run(snakemake, lambda: predict_patient(
    snakemake.input.bundle[0], PatientMaps.from_bids(snakemake.config["predict_bids_dir"], snakemake.wildcards.subject),
    snakemake.output[0], threads=snakemake.threads))
