# Perfusion maps from a session's raw DSC series (docs/perfusion.md), when the config says
# perfusion.maps_source: computed. Input (BIDS): sub-<l>/ses-<s>/perf/sub-<l>_ses-<s>_dsc.nii.gz
# + .json (RepetitionTime, EchoTime); output: results/perfusion/sub-<l>/ses-<s>/.
# Its input and target functions are in common.smk (perfusion_input, perfusion_outputs).


rule perfusion:
    input:
        unpack(perfusion_input),
    output:
        report(
            directory(f"{RESULTS}/perfusion/sub-{{subject}}/ses-{{session}}"),
            patterns=["{name}_desc-perfusion_qc.png"],
            caption="../report/perfusion_qc.rst",
            category="Perfusion QC",
        ),
    log:
        f"{LOGS}/perfusion/sub-{{subject}}_ses-{{session}}.log",
    benchmark:
        f"{BENCHMARKS}/perfusion/sub-{{subject}}_ses-{{session}}.tsv"
    group:
        "patient"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        dsc=lambda wildcards: str(
            raw_dsc_series(BIDS, wildcards.subject, wildcards.session)
        ),
        settings=config.get("perfusion", {}),
    script:
        "../scripts/perfusion.py"


# Tmax > threshold of the computed maps against the simulator's true Tmax, and each AIF's QC,
# per participant and session (simulated data with perfusion.maps_source: computed).
rule perfusion_accuracy:
    input:
        maps=lambda wildcards: perfusion_session_dirs(SUBJECTS),
        # The simulator's truth (true maps and AIF location) of every participant.
        truth=expand(f"{BIDS}/derivatives/simulation/sub-{{subject}}", subject=SUBJECTS),
    output:
        path(derivatives.perfusion_table(RESULTS)),
    log:
        f"{LOGS}/qc/perfusion_accuracy.log",
    benchmark:
        f"{BENCHMARKS}/perfusion_accuracy/perfusion_accuracy.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        bids=lambda wildcards, input: str(Path(input.truth[0]).parents[2]),
        threshold_s=config["cohort"]["tmax_threshold_s"],
    script:
        "../scripts/perfusion_accuracy.py"
