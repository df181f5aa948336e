# The model bundle (docs/predict.md): the deployed fold models, preprocessing settings, template,
# config, model card and checksums, for `tissuefate predict` on new patients.
from tissuefate.bundle import DEPLOYED_APPROACH

# New patients to predict with the bundle (--config predict_bids_dir=DIR): its sub-* folders.
PREDICT_BIDS = config.get("predict_bids_dir")
NEW_PATIENTS = (
    sorted(p.name.removeprefix("sub-") for p in Path(PREDICT_BIDS).glob("sub-*"))
    if PREDICT_BIDS
    else []
)


rule bundle:
    input:
        models=expand(
            rules.train.output.model,
            approach=DEPLOYED_APPROACH,
            target=TARGETS,
            fold=FOLDS,
        ),
        summary=rules.statistics.output.summary,
        cohort=f"{RESULTS}/cohort/participants.tsv",
        data=lambda wildcards: expand(rules.preprocess.output, subject=included()),
    output:
        directory(f"{RESULTS}/bundle"),
    log:
        f"{LOGS}/bundle.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        patients=lambda wildcards: included(),
    script:
        "../scripts/bundle.py"


# New patients of another BIDS dataset (--config predict_bids_dir=DIR): one folder each under
# results/predict/, and results/predict/summary.tsv.
if PREDICT_BIDS:

    rule predict_new_patient:
        input:
            bundle=rules.bundle.output,
            raw=f"{PREDICT_BIDS}/sub-{{subject}}",
        output:
            directory(f"{RESULTS}/predict/sub-{{subject}}"),
        log:
            f"{LOGS}/predict/sub-{{subject}}.log",
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=3000,
            runtime=10,
        script:
            "../scripts/predict_patient.py"

    rule predict_new_patients:
        input:
            expand(rules.predict_new_patient.output, subject=NEW_PATIENTS),
        output:
            f"{RESULTS}/predict/summary.tsv",
        log:
            f"{LOGS}/predict/summary.log",
        localrule: True
        script:
            "../scripts/predict_summary.py"
