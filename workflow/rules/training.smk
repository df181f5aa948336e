# The deep-learning study (METHOD.md sections 5-7): folds, one pretraining job, and
# {approach}/{target}/fold-{k} training jobs (21 for the default five folds).


rule splits:
    input:
        cohort=f"{RESULTS}/cohort/participants.tsv",
    output:
        f"{RESULTS}/splits/splits.json",
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
        model=f"{RESULTS}/models/pretrain/model.pt",
        curves=f"{RESULTS}/models/pretrain/curves.tsv",
        figure=report(
            f"{RESULTS}/models/pretrain/curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="pretraining (partial + unknown)",
        ),
    params:
        patients=training_patients,
    log:
        f"{LOGS}/training/pretrain.log",
    resources:
        # --gpus or --gres as the config asks (tissuefate.cluster; profiles/slurm/README.md).
        gpu=GPU["gpu"],
        gres=GPU["gres"],
        gpu_model=GPU["gpu_model"],
        tasks_per_gpu=GPU["tasks_per_gpu"],
        mem_mb=TRAIN_RESOURCES.get("mem_mb", 4000),
        runtime=TRAIN_RESOURCES.get("runtime", 60),
    threads: TRAIN_RESOURCES.get("threads", 1)
    conda:
        ENV
    script:
        "../scripts/train.py"


rule train:
    input:
        pretrained=pretrained_model,
        data=training_data,
    output:
        model=f"{RESULTS}/models/{{approach}}/{{target}}/fold-{{fold}}/model.pt",
        curves=f"{RESULTS}/models/{{approach}}/{{target}}/fold-{{fold}}/curves.tsv",
        figure=report(
            f"{RESULTS}/models/{{approach}}/{{target}}/fold-{{fold}}/curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{approach} {target}",
        ),
    params:
        patients=training_patients,
    log:
        f"{LOGS}/training/{{approach}}_{{target}}_fold-{{fold}}.log",
    wildcard_constraints:
        approach="pretraining|separate",
        target="tissue_at_risk|ischemic_core",
        fold=r"\d+",
    resources:
        # --gpus or --gres as the config asks (tissuefate.cluster; profiles/slurm/README.md).
        gpu=GPU["gpu"],
        gres=GPU["gres"],
        gpu_model=GPU["gpu_model"],
        tasks_per_gpu=GPU["tasks_per_gpu"],
        mem_mb=TRAIN_RESOURCES.get("mem_mb", 4000),
        runtime=TRAIN_RESOURCES.get("runtime", 60),
    threads: TRAIN_RESOURCES.get("threads", 1)
    conda:
        ENV
    script:
        "../scripts/train.py"
