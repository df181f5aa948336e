# Paths and participants, defined once for every rule file.
from functools import lru_cache
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError

from tissuefate.cluster import gpu_resources
from tissuefate.cohort import read_participants
from tissuefate.io.bids import perfusion_maps_dir
from tissuefate.io.derivatives import SPACE
from tissuefate.perfusion import raw_dsc_series
from tissuefate.perfusion.qc import true_tmax_path
from tissuefate.simulation import participant_labels
from tissuefate.splits import TARGET_GROUPS, TARGETS, job_patients, read_splits
from tissuefate.stages import fold_prediction_labels

BIDS = config["dataset"]["bids_dir"]
RESULTS = config.get("results_dir", "results")
LOGS = f"{RESULTS}/logs"
# Relative to the rule files in workflow/rules/.
ENV = "../../envs/tissuefate.yaml"

if config["dataset"]["simulate"]:
    # Known from the config alone, so the DAG is built before anything is simulated.
    SUBJECTS = participant_labels(config["simulation"])
    CLINICAL = {}
else:
    _participants = read_participants(BIDS)
    SUBJECTS = [p.removeprefix("sub-") for p in _participants["participant_id"]]
    # Each participant's own row of participants.tsv: editing one row reruns that row's review only.
    CLINICAL = {
        pid.removeprefix("sub-"): "\t".join(row)
        for pid, row in zip(_participants["participant_id"], _participants.astype(str).values.tolist())
    }


wildcard_constraints:
    subject="[A-Za-z0-9]+",


# perfusion.maps_source: computed -> the review and preprocessing read the perfusion maps
# computed from raw DSC (rules/perfusion.smk) in MAPS_DIR instead of the dataset's own maps.
MAPS_DIR = perfusion_maps_dir(config)
if MAPS_DIR is not None and config["dataset"]["simulate"]:
    raise WorkflowError(
        "perfusion.maps_source: computed needs the raw DSC series on disk before the DAG is built, "
        "and dataset.simulate: true simulates them during the run. Fix: simulate the cohort first "
        "(tissuefate simulate --configfile <config>), then run with dataset.simulate: false and "
        "dataset.bids_dir pointing at it."
    )


@lru_cache(maxsize=None)
def _files_under(folder):
    # Listed once per DAG build (review and preprocessing read the same folders).
    return tuple(sorted(str(p) for p in Path(folder).rglob("*") if p.is_file()))


def participant_inputs(wildcards):
    """A participant's raw data and lesion masks.

    Simulated data: the folders the simulator writes (Snakemake tracks them as its outputs).
    Real data: every file in them, because Snakemake compares a folder's own mtime only and would
    miss a re-exported map inside it; a changed file reruns that participant's jobs.
    """
    raw = f"{BIDS}/sub-{wildcards.subject}"
    lesions = f"{BIDS}/derivatives/lesions/sub-{wildcards.subject}"
    if config["dataset"]["simulate"]:
        return {"raw": raw, "lesions": lesions}
    inputs = {"raw": list(_files_under(raw)) if Path(raw).is_dir() else raw}
    if Path(lesions).is_dir():
        inputs["lesions"] = list(_files_under(lesions))
    if MAPS_DIR is not None:
        # Maps computed from each session's raw DSC series (rule perfusion).
        inputs["perfusion"] = [
            f"{MAPS_DIR}/sub-{wildcards.subject}/ses-{session}"
            for session in ("baseline", "followup")
            if raw_dsc_series(BIDS, wildcards.subject, session).exists()
        ]
    return inputs


def clinical_row(wildcards):
    return CLINICAL.get(wildcards.subject, "")


def included(groups=None):
    """Labels of the included participants (optionally of some reperfusion groups).

    Known only once the cohort checkpoint has run; Snakemake re-evaluates the DAG then.
    """
    table = pd.read_csv(checkpoints.cohort.get().output.participants, sep="\t", keep_default_na=False)
    table = table[table["included"].astype(str) == "True"]
    if groups is not None:
        table = table[table["reperfusion_group"].isin(groups)]
    return sorted(p.removeprefix("sub-") for p in table["participant_id"])


APPROACHES = ("pretraining", "separate")
FOLDS = list(range(1, int(config.get("splits", {}).get("n_folds", 5)) + 1))
TRAIN_RESOURCES = config.get("training", {}).get("resources", {})
GPU = gpu_resources(TRAIN_RESOURCES)


# Input functions of the rules (evaluated once the cohort checkpoint has run).


def study_splits():
    """The folds, computed from the cohort table exactly as the splits rule writes splits.json.

    Training and prediction jobs get their own patients as params (and their data as inputs)
    rather than reading splits.json: a change to the cohort table reruns only the jobs whose
    patients changed, not all 21 models.
    """
    table = checkpoints.cohort.get().output.participants
    return _splits_of(table, Path(table).stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _splits_of(table, mtime_ns):
    return read_splits(table, config["seed"], **config.get("splits", {}))


def _labels(ids):
    return sorted(p.removeprefix("sub-") for p in ids)


def training_patients(wildcards):
    """``{"train": [...], "val": [...]}`` of a training job (its test patients do not matter)."""
    approach = wildcards.get("approach", "pretrain")
    fold = int(wildcards.fold) if "fold" in wildcards.keys() else None
    patients = job_patients(study_splits(), approach, wildcards.get("target"), fold)
    return {"train": patients["train"], "val": patients["val"]}


def training_data(wildcards):
    """Preprocessed data of the job's training and validation patients (not its test patients)."""
    patients = training_patients(wildcards)
    return expand(rules.preprocess.output, subject=_labels(patients["train"] + patients["val"]))


def pretrained_model(wildcards):
    return rules.pretrain.output.model if wildcards.approach == "pretraining" else []


def prediction_patients(wildcards):
    own, cross = fold_prediction_labels(study_splits(), wildcards.target, int(wildcards.fold))
    return {"own": own, "cross": cross}


def prediction_data(wildcards):
    """Preprocessed data of the fold's test patients of both targets."""
    patients = prediction_patients(wildcards)
    return expand(rules.preprocess.output, subject=sorted(set(patients["own"] + patients["cross"])))


def evaluation_inputs(wildcards):
    # The reperfusion groups whose patients are tested (minimal: tissue at risk, major: core).
    tested = included(tuple(TARGET_GROUPS.values()))
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
    if config["dataset"]["simulate"] or Path(f"{BIDS}/derivatives/simulation").is_dir():
        # Accuracy against the simulator's truth (also for a simulated dataset run as real data).
        outputs.append(rules.registration_accuracy.output[0])
    if PERFUSION_TRUTH:
        # Maps computed from simulated raw DSC against the simulator's true Tmax.
        outputs.append(rules.perfusion_accuracy.output[0])
    return outputs


# Perfusion maps from raw DSC (rules/perfusion.smk, docs/perfusion.md).
wildcard_constraints:
    session="baseline|followup",


def perfusion_input(wildcards):
    if config["dataset"]["simulate"]:
        # The simulator writes the participant's folder as one output.
        return {"raw": f"{BIDS}/sub-{wildcards.subject}"}
    series = raw_dsc_series(BIDS, wildcards.subject, wildcards.session)
    return {"dsc": str(series), "sidecar": str(series).replace(".nii.gz", ".json")}


def perfusion_outputs(wildcards):
    """Included participants' sessions that hold a raw DSC series (none while maps_source is provided)."""
    if config.get("perfusion", {}).get("maps_source", "provided") != "computed":
        return []
    return [
        f"{RESULTS}/perfusion/sub-{s}/ses-{ses}"
        for s in included()
        for ses in ("baseline", "followup")
        if raw_dsc_series(BIDS, s, ses).exists()
    ]


# Sessions whose maps are computed from raw DSC and whose true Tmax the simulator wrote, as
# "label:session" (rule perfusion_accuracy, results/qc/perfusion.tsv); none with provided maps.
PERFUSION_TRUTH = (
    [
        f"{s}:{ses}"
        for s in SUBJECTS
        for ses in ("baseline", "followup")
        if raw_dsc_series(BIDS, s, ses).exists()
        and true_tmax_path(BIDS, s, ses).exists()
    ]
    if MAPS_DIR is not None
    else []
)


def perfusion_truth_inputs(wildcards):
    return [
        f"{MAPS_DIR}/sub-{s}/ses-{ses}"
        for s, ses in (x.split(":") for x in PERFUSION_TRUTH)
    ]
