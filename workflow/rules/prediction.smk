# Prediction (METHOD.md section 8): each fold's model on its test patients and, for the
# mismatch ratio, on the other target's test patients of the same fold; MNI and native space.


rule predict:
    input:
        model=rules.train.output.model,
        data=prediction_data,
        # The baseline DWI grids the maps are mapped back to.
        raw=lambda wildcards: raw_data(prediction_labels(wildcards)),
    output:
        maps=directory(
            path(
                derivatives.prediction_dir(RESULTS, "{approach}", "{target}", "{fold}")
            )
        ),
        attention=report(
            path(
                derivatives.attention_map(RESULTS, "{approach}", "{target}", "{fold}")
            ),
            caption="../report/attention.rst",
            category="Attention maps",
            subcategory="{approach} {target}",
        ),
    log:
        f"{LOGS}/prediction/{{approach}}_{{target}}_fold-{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/predict/{{approach}}_{{target}}_fold-{{fold}}.tsv"
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
        runtime=30,
    params:
        patients=prediction_patients,
        bids=bids_root,
    script:
        "../scripts/predict.py"
