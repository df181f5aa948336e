# Evaluation and statistics (METHOD.md sections 8-9): per-case metrics, mismatch ratios,
# the paper's comparisons, concordance, result tables and figures.


rule metrics:
    input:
        unpack(evaluation_inputs),
        splits=rules.splits.output,
        cohort=COHORT_TABLE,
    output:
        per_case=path(derivatives.metrics_file(RESULTS, "per_case")),
        mismatch=path(derivatives.metrics_file(RESULTS, "mismatch")),
    log:
        f"{LOGS}/metrics.log",
    benchmark:
        f"{BENCHMARKS}/metrics/metrics.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/metrics.py"


rule statistics:
    input:
        per_case=rules.metrics.output.per_case,
        mismatch=rules.metrics.output.mismatch,
    output:
        **{
            name: report(
                path(derivatives.table_file(RESULTS, name)),
                caption="../report/tables.rst",
                category="Results",
            )
            for name in derivatives.RESULT_TABLES
        },
        markdown=[
            path(derivatives.table_file(RESULTS, name, "md"))
            for name in derivatives.RESULT_TABLES
        ],
    log:
        f"{LOGS}/statistics.log",
    benchmark:
        f"{BENCHMARKS}/statistics/statistics.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
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
            directory(path(derivatives.figures_dir(RESULTS))),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/figures.log",
    benchmark:
        f"{BENCHMARKS}/figures/figures.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


# What each rule and stage cost in this run, from Snakemake's own benchmark: files (wall s,
# peak RSS) and the jobs' own CPU accounts at the end of their logs (exact; Snakemake samples). Runs last; its tables are measurements, not results (outside results/).
rule costs:
    input:
        final_outputs,
        perfusion_outputs,
    output:
        rules=report(
            f"{BENCHMARKS}/rules.tsv",
            caption="../report/costs.rst",
            category="Cost per rule",
        ),
        stages=f"{BENCHMARKS}/stages.tsv",
    log:
        f"{LOGS}/costs.log",
    localrule: True
    conda:
        ENV
    params:
        benchmarks=lambda wildcards, output: str(Path(output.rules).parent),
        logs=LOGS,
    script:
        # The script finds the rule files beside its own folder (workflow/rules): no absolute
        # path in the params, so a moved or copied study does not rerun this rule.
        "../scripts/costs.py"
