# Perfusion maps from a session's raw DSC series (docs/perfusion.md), when the config says
# perfusion.maps_source: computed. Input (BIDS): sub-<l>/ses-<s>/perf/sub-<l>_ses-<s>_dsc.nii.gz
# + .json (RepetitionTime, EchoTime); output: results/perfusion/sub-<l>/ses-<s>/.
PERFUSION = config.get("perfusion", {})
PERFUSION_SESSIONS = ("baseline", "followup")


wildcard_constraints:
    session="baseline|followup",


def dsc_series(subject, session):
    return f"{BIDS}/sub-{subject}/ses-{session}/perf/sub-{subject}_ses-{session}_dsc.nii.gz"


def perfusion_input(wildcards):
    if config["dataset"]["simulate"]:
        # The simulator writes the participant's folder as one output.
        return {"raw": f"{BIDS}/sub-{wildcards.subject}"}
    series = dsc_series(wildcards.subject, wildcards.session)
    return {"dsc": series, "sidecar": series.replace(".nii.gz", ".json")}


def perfusion_outputs(wildcards):
    """Every included participant's sessions that hold a raw DSC series (none with provided maps)."""
    if PERFUSION.get("maps_source", "provided") != "computed":
        return []
    return [
        f"{RESULTS}/perfusion/sub-{s}/ses-{ses}"
        for s in included()
        for ses in PERFUSION_SESSIONS
        if Path(dsc_series(s, ses)).exists()
    ]


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
    params:
        dsc=lambda wildcards: dsc_series(wildcards.subject, wildcards.session),
        settings=PERFUSION,
    log:
        f"{LOGS}/perfusion/sub-{{subject}}_ses-{{session}}.log",
    group:
        "patient"
    resources:
        mem_mb=4000,
        runtime=10,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/perfusion.py"
