# The simulated cohort (docs/simulation.md): the plan first, then each participant on its own.


rule simulate_plan:
    output:
        participants=f"{BIDS}/participants.tsv",
        sidecar=f"{BIDS}/participants.json",
        description=f"{BIDS}/dataset_description.json",
        plan=f"{BIDS}/derivatives/simulation/plan.tsv",
        # The MNI anatomy on the simulation grid, read by every participant's job.
        anatomy=f"{BIDS}/derivatives/simulation/anatomy.npz",
        bidsignore=f"{BIDS}/.bidsignore",
    log:
        f"{LOGS}/simulate_plan.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        bids=lambda wildcards, output: str(Path(output.participants).parent),
    script:
        "../scripts/simulate_plan.py"


rule simulate_participant:
    input:
        plan=rules.simulate_plan.output.plan,
        anatomy=rules.simulate_plan.output.anatomy,
    output:
        raw=directory(f"{BIDS}/sub-{{subject}}"),
        lesions=directory(f"{BIDS}/derivatives/lesions/sub-{{subject}}"),
        truth=directory(f"{BIDS}/derivatives/simulation/sub-{{subject}}"),
    log:
        f"{LOGS}/simulate/sub-{{subject}}.log",
    benchmark:
        f"{BENCHMARKS}/simulate_participant/sub-{{subject}}.tsv"
    group:
        "patient"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        bids=lambda wildcards, input: str(Path(input.plan).parents[2]),
    script:
        "../scripts/simulate_participant.py"
