# tissuefate: tissue-at-risk and ischemic-core prediction in acute stroke (Yu et al., AJNR 2021).
# One rule file per stage of the study; every computation is a function of the tissuefate package.
# The DAG reads like the paper's Fig 2: cohort -> preprocessing -> pretraining -> fine-tuning /
# separate training per target and fold -> prediction -> metrics -> statistics.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


if config["dataset"]["simulate"]:

    include: "workflow/rules/simulate.smk"


include: "workflow/rules/cohort.smk"
include: "workflow/rules/preprocessing.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/prediction.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/perfusion.smk"
include: "workflow/rules/bundle.smk"


rule all:
    default_target: True
    input:
        final_outputs,
        perfusion_outputs,
        rules.costs.output,
