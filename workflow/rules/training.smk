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
    resources:
        mem_mb=500,
        runtime=5,
    threads: 1
    conda:
        ENV
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
    params:
        patients=training_patients,
    log:
        f"{LOGS}/training/pretrain.log",
    resources:
        # snakemake-executor-plugin-slurm 2.6.1 reads gpu= (gres gpu:N); gpus= fails there.
        gpu=TRAIN_RESOURCES["gpus"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
    threads: TRAIN_RESOURCES["threads"]
    conda:
        ENV
    script:
        "../scripts/train.py"


rule train:
    input:
        pretrained=pretrained_model,
        data=training_data,
    output:
        model=path(derivatives.model_file(RESULTS, "model.pt", "{approach}", "{target}", "{fold}")),
        curves=path(derivatives.model_file(RESULTS, "curves.tsv", "{approach}", "{target}", "{fold}")),
        figure=report(
            path(derivatives.model_file(RESULTS, "curves.png", "{approach}", "{target}", "{fold}")),
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{approach} {target}",
        ),
    params:
        patients=training_patients,
    log:
        f"{LOGS}/training/{{approach}}_{{target}}_fold-{{fold}}.log",
    wildcard_constraints:
        approach="|".join(TRAINED_APPROACHES),
        target="|".join(TARGETS),
        fold=r"\d+",
    resources:
        # snakemake-executor-plugin-slurm 2.6.1 reads gpu= (gres gpu:N); gpus= fails there.
        gpu=TRAIN_RESOURCES["gpus"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
    threads: TRAIN_RESOURCES["threads"]
    conda:
        ENV
    script:
        "../scripts/train.py"
