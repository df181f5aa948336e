# Per-patient preprocessing (METHOD.md section 4): ANTs coregistration and MNI normalization in
# a nipype workflow, coverage, parenchymal-mean normalization, threshold masks, QC figure.


rule preprocess:
    input:
        unpack(participant_inputs),
    params:
        bids=BIDS,
    output:
        report(
            directory(f"{RESULTS}/preprocessing/sub-{{subject}}"),
            patterns=["{name}_desc-qc_figure.png"],
            caption="../report/registration_qc.rst",
            category="Registration QC",
        ),
    log:
        f"{LOGS}/preprocessing/sub-{{subject}}.log",
    group:
        "patient"
    resources:
        mem_mb=3000,
        runtime=20,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/preprocess.py"


rule thresholding:
    input:
        rules.preprocess.output,
    output:
        tissue_at_risk=f"{RESULTS}/thresholding/sub-{{subject}}/sub-{{subject}}_ses-baseline_space-{SPACE}_desc-tissueatrisk_probseg.nii.gz",
        ischemic_core=f"{RESULTS}/thresholding/sub-{{subject}}/sub-{{subject}}_ses-baseline_space-{SPACE}_desc-ischemiccore_probseg.nii.gz",
    log:
        f"{LOGS}/thresholding/sub-{{subject}}.log",
    group:
        "patient"
    resources:
        mem_mb=1000,
        runtime=5,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/thresholding.py"


rule registration_accuracy:
    input:
        preprocessed=lambda wildcards: expand(rules.preprocess.output, subject=included()),
        # The simulator's truth and the raw b1000 grid of each participant.
        truth=lambda wildcards: expand(f"{BIDS}/derivatives/simulation/sub-{{subject}}", subject=included()),
        raw=lambda wildcards: raw_data(included()),
    output:
        f"{RESULTS}/qc/registration.tsv",
    params:
        bids=BIDS,
    log:
        f"{LOGS}/qc/registration.log",
    resources:
        mem_mb=2000,
        runtime=20,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/registration_accuracy.py"
