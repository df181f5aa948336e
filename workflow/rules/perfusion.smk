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


# Tmax > 6 s from the computed maps against the simulator's truth, per session (simulated data).
rule perfusion_accuracy:
    input:
        perfusion_truth_inputs,
    output:
        f"{RESULTS}/qc/perfusion.tsv",
    log:
        f"{LOGS}/qc/perfusion.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sessions=PERFUSION_TRUTH,
    script:
        "../scripts/perfusion_accuracy.py"
