# Per-patient preprocessing (METHOD.md section 4): ANTs coregistration and MNI normalization in
# a nipype workflow, coverage, parenchymal-mean normalization, threshold masks, QC figure.


rule preprocess:
    input:
        unpack(participant_inputs),
    params:
        bids=BIDS,
    output:
        report(
            directory(path(derivatives.participant_dir(RESULTS, "{subject}"))),
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
        **{target: path(derivatives.thresholding_map(RESULTS, "{subject}", target)) for target in TARGETS},
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
        path(derivatives.registration_table(RESULTS)),
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
