# Per-patient preprocessing (METHOD.md section 4): ANTs coregistration and MNI normalization in
# a nipype workflow, coverage, parenchymal-mean normalization, threshold masks, QC figure.


rule preprocess:
    input:
        unpack(participant_inputs),
    output:
        report(
            directory(path(derivatives.participant_dir(RESULTS, "{subject}"))),
            patterns=["{name}_desc-qc_figure.png"],
            caption="../report/registration_qc.rst",
            category="Registration QC",
        ),
    log:
        f"{LOGS}/preprocessing/sub-{{subject}}.log",
    benchmark:
        f"{BENCHMARKS}/preprocess/sub-{{subject}}.tsv"
    group:
        "patient"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        bids=bids_root,
    script:
        "../scripts/preprocess.py"


rule thresholding:
    input:
        rules.preprocess.output,
    output:
        **{
            target: path(derivatives.thresholding_map(RESULTS, "{subject}", target))
            for target in TARGETS
        },
    log:
        f"{LOGS}/thresholding/sub-{{subject}}.log",
    benchmark:
        f"{BENCHMARKS}/thresholding/sub-{{subject}}.tsv"
    group:
        "patient"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/thresholding.py"


rule registration_accuracy:
    input:
        preprocessed=lambda wildcards: expand(
            rules.preprocess.output, subject=included()
        ),
        # The simulator's truth and the raw b1000 grid of each participant.
        truth=lambda wildcards: expand(
            f"{BIDS}/derivatives/simulation/sub-{{subject}}", subject=included()
        ),
        raw=lambda wildcards: raw_data(included()),
    output:
        path(derivatives.registration_table(RESULTS)),
    log:
        f"{LOGS}/qc/registration_accuracy.log",
    benchmark:
        f"{BENCHMARKS}/registration_accuracy/registration_accuracy.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        bids=bids_root,
    script:
        "../scripts/registration_accuracy.py"
