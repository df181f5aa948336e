# tissuefate: tissue-at-risk and ischemic-core prediction in acute stroke (Yu et al., AJNR 2021).
# One rule file per stage of the study; every computation is a function of the tissuefate package.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
if config["dataset"]["simulate"]:

    include: "workflow/rules/simulate.smk"


include: "workflow/rules/cohort.smk"


rule all:
    input:
        rules.cohort.output,
    default_target: True
