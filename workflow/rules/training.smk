# The deep-learning study (METHOD.md sections 5-7): folds, one pretraining job, and
# {approach}/{target}/fold-{k} training jobs (21 for the default five folds).


rule splits:
    input:
        cohort=COHORT_TABLE,
    output:
        path(derivatives.splits_file(RESULTS)),
    log:
        f"{LOGS}/splits.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/splits.py"


rule pretrain:
    input:
        # The job's own patients (params) from the cohort table, not splits.json: a rewritten
        # splits.json reruns nothing, a changed patient list (params) or patient (data) does.
        data=training_data,
    output:
        model=path(derivatives.model_file(RESULTS, "model.pt", PRETRAIN)),
        curves=path(derivatives.model_file(RESULTS, "curves.tsv", PRETRAIN)),
        figure=report(
            path(derivatives.model_file(RESULTS, "curves.png", PRETRAIN)),
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="pretraining (partial + unknown)",
        ),
    log:
        f"{LOGS}/training/pretrain.log",
    benchmark:
        f"{BENCHMARKS}/pretrain/pretrain.tsv"
    conda:
        ENV
    threads: TRAIN_RESOURCES["threads"]
    resources:
        # --gpus or --gres as the config asks (tissuefate.cluster; profiles/slurm/README.md).
        gpu=GPU["gpu"],
        gres=GPU["gres"],
        gpu_model=GPU["gpu_model"],
        tasks_per_gpu=GPU["tasks_per_gpu"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
    params:
        patients=training_patients,
    script:
        "../scripts/train.py"


rule train:
    input:
        pretrained=pretrained_model,
        data=training_data,
    output:
        model=path(
            derivatives.model_file(
                RESULTS, "model.pt", "{approach}", "{target}", "{fold}"
            )
        ),
        curves=path(
            derivatives.model_file(
                RESULTS, "curves.tsv", "{approach}", "{target}", "{fold}"
            )
        ),
        figure=report(
            path(
                derivatives.model_file(
                    RESULTS, "curves.png", "{approach}", "{target}", "{fold}"
                )
            ),
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{approach} {target}",
        ),
    log:
        f"{LOGS}/training/{{approach}}_{{target}}_fold-{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{approach}}_{{target}}_fold-{{fold}}.tsv"
    wildcard_constraints:
        approach="|".join(TRAINED_APPROACHES),
        target="|".join(TARGETS),
        fold=r"\d+",
    conda:
        ENV
    threads: TRAIN_RESOURCES["threads"]
    resources:
        # --gpus or --gres as the config asks (tissuefate.cluster; profiles/slurm/README.md).
        gpu=GPU["gpu"],
        gres=GPU["gres"],
        gpu_model=GPU["gpu_model"],
        tasks_per_gpu=GPU["tasks_per_gpu"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
    params:
        patients=training_patients,
    script:
        "../scripts/train.py"
