# The study's cohort (METHOD.md sections 2-3): exclusions, reperfusion groups, Table 1, flow.


rule review_participant:
    input:
        unpack(participant_inputs),
        # ancient: the participant's own row is the params below, so editing one row reruns one review.
        participants=ancient(f"{BIDS}/participants.tsv"),
    output:
        path(derivatives.review_json(RESULTS, "{subject}")),
    log:
        f"{LOGS}/cohort/sub-{{subject}}.log",
    benchmark:
        f"{BENCHMARKS}/review_participant/sub-{{subject}}.tsv"
    group:
        "patient"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        clinical=clinical_row,
        bids=lambda wildcards, input: str(Path(input.participants).parent),
    script:
        "../scripts/review_participant.py"


checkpoint cohort:
    input:
        reviews=expand(rules.review_participant.output, subject=SUBJECTS),
        participants=f"{BIDS}/participants.tsv",
    output:
        participants=COHORT_TABLE,
        table1=path(derivatives.cohort_file(RESULTS, "table1.tsv")),
        table1_md=path(derivatives.cohort_file(RESULTS, "table1.md")),
        flow=report(
            path(derivatives.cohort_file(RESULTS, "flow.png")),
            caption="../report/flow.rst",
            category="Cohort",
        ),
    log:
        f"{LOGS}/cohort/cohort.log",
    benchmark:
        f"{BENCHMARKS}/cohort/cohort.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/cohort.py"


rule results_description:
    output:
        path(derivatives.dataset_description(RESULTS)),
    log:
        f"{LOGS}/results_description.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        bids=BIDS,
    script:
        "../scripts/results_description.py"
