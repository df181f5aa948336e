# Paths and participants, defined once for every rule file.
from pathlib import Path

import pandas as pd

from tissuefate.cohort import read_participants
from tissuefate.io.derivatives import SPACE
from tissuefate.simulation import participant_labels

BIDS = config["dataset"]["bids_dir"]
RESULTS = config.get("results_dir", "results")
LOGS = f"{RESULTS}/logs"
# Relative to the rule files in workflow/rules/.
ENV = "../../envs/tissuefate.yaml"

if config["dataset"]["simulate"]:
    # Known from the config alone, so the DAG is built before anything is simulated.
    SUBJECTS = participant_labels(config["simulation"])
else:
    SUBJECTS = [p.removeprefix("sub-") for p in read_participants(BIDS)["participant_id"]]


wildcard_constraints:
    subject="[A-Za-z0-9]+",


def participant_inputs(wildcards):
    """A participant's raw folder, and the lesion-mask folder where it exists (or will)."""
    inputs = {"raw": f"{BIDS}/sub-{wildcards.subject}"}
    lesions = f"{BIDS}/derivatives/lesions/sub-{wildcards.subject}"
    if config["dataset"]["simulate"] or Path(lesions).exists():
        inputs["lesions"] = lesions
    return inputs


def included(groups=None):
    """Labels of the included participants (optionally of some reperfusion groups).

    Known only once the cohort checkpoint has run; Snakemake re-evaluates the DAG then.
    """
    table = pd.read_csv(checkpoints.cohort.get().output.participants, sep="\t", keep_default_na=False)
    table = table[table["included"].astype(str) == "True"]
    if groups is not None:
        table = table[table["reperfusion_group"].isin(groups)]
    return sorted(p.removeprefix("sub-") for p in table["participant_id"])


# Training data of each job: the reperfusion groups whose patients it may see.
GROUPS_OF = {
    "pretrain": ("partial", "unknown"),
    "tissue_at_risk": ("minimal",),
    "ischemic_core": ("major",),
}
APPROACHES = ("pretraining", "separate")
TARGETS = ("tissue_at_risk", "ischemic_core")
FOLDS = list(range(1, int(config.get("splits", {}).get("n_folds", 5)) + 1))
TRAIN_RESOURCES = config.get("training", {}).get("resources", {})


# Input functions of the rules (evaluated once the cohort checkpoint has run).


def training_data(groups):
    def inputs(wildcards):
        return expand(rules.preprocess.output, subject=included(groups))

    return inputs


def pretrained_model(wildcards):
    return rules.pretrain.output.model if wildcards.approach == "pretraining" else []


def target_data(wildcards):
    return expand(rules.preprocess.output, subject=included(GROUPS_OF[wildcards.target]))


def prediction_data(wildcards):
    groups = GROUPS_OF["tissue_at_risk"] + GROUPS_OF["ischemic_core"]
    return expand(rules.preprocess.output, subject=included(groups))


def evaluation_inputs(wildcards):
    tested = included(GROUPS_OF["tissue_at_risk"] + GROUPS_OF["ischemic_core"])
    return {
        "predictions": expand(
            rules.predict.output.maps, approach=APPROACHES, target=TARGETS, fold=FOLDS
        ),
        "thresholding": expand(rules.thresholding.output, subject=tested),
        "data": expand(rules.preprocess.output, subject=tested),
    }


def final_outputs(wildcards):
    outputs = [
        *rules.cohort.output,
        *expand(rules.thresholding.output, subject=included()),
        *rules.statistics.output,
        *rules.figures.output,
    ]
    if config["dataset"]["simulate"]:
        outputs.append(rules.registration_accuracy.output[0])
    return outputs
