# Evaluation and statistics (METHOD.md sections 8-9): per-case metrics, mismatch ratios,
# the paper's comparisons, concordance, result tables and figures.


rule metrics:
    input:
        unpack(evaluation_inputs),
        splits=rules.splits.output,
        cohort=f"{RESULTS}/cohort/participants.tsv",
    output:
        per_case=f"{RESULTS}/metrics/per_case.tsv",
        mismatch=f"{RESULTS}/metrics/mismatch.tsv",
    log:
        f"{LOGS}/metrics.log",
    resources:
        mem_mb=4000,
        runtime=30,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/metrics.py"


rule statistics:
    input:
        per_case=rules.metrics.output.per_case,
        mismatch=rules.metrics.output.mismatch,
    output:
        summary=report(f"{RESULTS}/tables/summary.tsv", caption="../report/tables.rst", category="Results"),
        comparisons=report(f"{RESULTS}/tables/comparisons.tsv", caption="../report/tables.rst", category="Results"),
        concordance=report(f"{RESULTS}/tables/concordance.tsv", caption="../report/tables.rst", category="Results"),
        mismatch_summary=report(
            f"{RESULTS}/tables/mismatch_summary.tsv", caption="../report/tables.rst", category="Results"
        ),
        markdown=expand(
            f"{RESULTS}/tables/{{name}}.md",
            name=("summary", "comparisons", "concordance", "mismatch_summary"),
        ),
    log:
        f"{LOGS}/statistics.log",
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/statistics.py"


rule figures:
    input:
        unpack(evaluation_inputs),
        per_case=rules.metrics.output.per_case,
        mismatch=rules.metrics.output.mismatch,
        splits=rules.splits.output,
    output:
        report(
            directory(f"{RESULTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/figures.log",
    resources:
        mem_mb=2000,
        runtime=10,
    threads: 1
    conda:
        ENV
    script:
        "../scripts/figures.py"
