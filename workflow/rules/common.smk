# Paths and participants, defined once for every rule file.
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from tissuefate.cluster import gpu_resources
from tissuefate.io import derivatives
from tissuefate.io.bids import perfusion_maps_dir, raw_dsc_series
from tissuefate.io.participants import read_participants
from tissuefate.names import (
    PRETRAIN,
    PRETRAINING,
    TARGET_GROUPS,
    TARGETS,
    TRAINED_APPROACHES,
)
from tissuefate.perfusion.sessions import dsc_sessions
from tissuefate.simulation.clinical import participant_labels
from tissuefate.splits import fold_prediction_labels, job_patients, read_splits

BIDS = config["dataset"]["bids_dir"]
RESULTS = config["results_dir"]
LOGS = f"{RESULTS}/logs"
# Snakemake's own measurements (seconds, CPU, peak memory) of every job that does real work:
# outside results/, whose tables are compared byte for byte between runs.
BENCHMARKS = "benchmarks"
# Every output path comes from tissuefate.io.derivatives (the package reads the same names).
path = str
COHORT_TABLE = path(derivatives.cohort_file(RESULTS, "participants.tsv"))
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
        for pid, row in zip(
            _participants["participant_id"], _participants.astype(str).values.tolist()
        )
    }


wildcard_constraints:
    subject="[A-Za-z0-9]+",


@lru_cache(maxsize=None)
def _files_under(folder):
    # Listed once per DAG build (review and preprocessing read the same folders).
    return tuple(sorted(str(p) for p in Path(folder).rglob("*") if p.is_file()))


def participant_inputs(wildcards):
    """A participant's raw data and lesion masks.

    Simulated data: the folders the simulator writes (Snakemake tracks them as its outputs).
    Real data: every file in them, because Snakemake compares a folder's own mtime only and would
    miss a re-exported map inside it; a changed file reruns that participant's jobs.
    With perfusion.maps_source: computed, also the maps computed from each session's raw DSC.
    """
    inputs = participant_data(wildcards.subject)
    if MAPS_DIR is not None:
        inputs["perfusion"] = perfusion_session_dirs([wildcards.subject])
    return inputs


def participant_data(subject):
    raw = f"{BIDS}/sub-{subject}"
    lesions = f"{BIDS}/derivatives/lesions/sub-{subject}"
    if config["dataset"]["simulate"]:
        return {"raw": raw, "lesions": lesions}
    inputs = {"raw": list(_files_under(raw)) if Path(raw).is_dir() else raw}
    if Path(lesions).is_dir():
        inputs["lesions"] = list(_files_under(lesions))
    return inputs


def raw_data(labels):
    """The raw data of several participants (their baseline DWI grids, for example)."""
    raw = [participant_data(label)["raw"] for label in sorted(set(labels))]
    return [
        path
        for paths in raw
        for path in (paths if isinstance(paths, list) else [paths])
    ]


SUBJECT_FOLDER = re.compile(r"sub-[A-Za-z0-9]+")


def bids_root(wildcards, input):
    """The BIDS dataset above the rule's raw inputs (the folder holding sub-<label>/).

    While the cohort checkpoint is not known to be done (always so at first in a cluster job,
    which builds its DAG from the target job alone), the raw inputs are the checkpoint's
    output as a placeholder: the configured dataset stands in until Snakemake builds the job
    again with its real inputs."""
    raw = [input.raw] if isinstance(input.raw, str) else list(input.raw)
    for path in (Path(raw[0]), *Path(raw[0]).parents) if raw else ():
        if SUBJECT_FOLDER.fullmatch(path.name):
            return str(path.parent)
    return BIDS


def clinical_row(wildcards):
    return CLINICAL.get(wildcards.subject, "")


def included(groups=None):
    """Labels of the included participants (optionally of some reperfusion groups).

    Known only once the cohort checkpoint has run; Snakemake re-evaluates the DAG then.
    """
    table = pd.read_csv(
        checkpoints.cohort.get().output.participants, sep="\t", keep_default_na=False
    )
    table = table[table["included"].astype(str) == "True"]
    if groups is not None:
        table = table[table["reperfusion_group"].isin(groups)]
    return sorted(p.removeprefix("sub-") for p in table["participant_id"])


APPROACHES = TRAINED_APPROACHES
FOLDS = list(range(1, config["splits"]["n_folds"] + 1))
TRAIN_RESOURCES = config["training"]["resources"]
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
    return read_splits(table, config["seed"], **config["splits"])


def _labels(ids):
    return sorted(p.removeprefix("sub-") for p in ids)


def training_patients(wildcards):
    """``{"train": [...], "val": [...]}`` of a training job (its test patients do not matter)."""
    approach = wildcards.get("approach", PRETRAIN)
    fold = int(wildcards.fold) if "fold" in wildcards.keys() else None
    patients = job_patients(study_splits(), approach, wildcards.get("target"), fold)
    return {"train": patients["train"], "val": patients["val"]}


def training_data(wildcards):
    """Preprocessed data of the job's training and validation patients (not its test patients)."""
    patients = training_patients(wildcards)
    return expand(
        rules.preprocess.output, subject=_labels(patients["train"] + patients["val"])
    )


def pretrained_model(wildcards):
    return rules.pretrain.output.model if wildcards.approach == PRETRAINING else []


def prediction_patients(wildcards):
    own, cross = fold_prediction_labels(
        study_splits(), wildcards.target, int(wildcards.fold)
    )
    return {"own": own, "cross": cross}


def prediction_labels(wildcards):
    patients = prediction_patients(wildcards)
    return sorted(set(patients["own"] + patients["cross"]))


def prediction_data(wildcards):
    """Preprocessed data of the fold's test patients of both targets."""
    return expand(rules.preprocess.output, subject=prediction_labels(wildcards))


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


def simulator_truth():
    """The dataset carries the simulator's truth (simulated, or a simulated dataset run as real data)."""
    return (
        config["dataset"]["simulate"] or Path(f"{BIDS}/derivatives/simulation").is_dir()
    )


def final_outputs(wildcards):
    outputs = [
        *rules.results_description.output,
        *rules.cohort.output,
        *expand(rules.thresholding.output, subject=included()),
        *rules.statistics.output,
        *rules.figures.output,
        *rules.bundle.output,
    ]
    if simulator_truth():
        # Accuracy against the simulator's truth (also for a simulated dataset run as real data).
        outputs.append(rules.registration_accuracy.output[0])
    return outputs


# Perfusion maps from raw DSC (rules/perfusion.smk, docs/perfusion.md).
wildcard_constraints:
    session="baseline|followup",


# perfusion.maps_source: computed -> the review and preprocessing read the maps computed from
# raw DSC (rules/perfusion.smk) instead of the dataset's own (None: the provided maps).
MAPS_DIR = perfusion_maps_dir(config)


@lru_cache(maxsize=None)
def _dsc_sessions():
    # A simulated dataset: from its plan (known before it is written); real data: its files.
    return dsc_sessions(config, BIDS, tuple(SUBJECTS))


def perfusion_session_dirs(labels):
    """Rule perfusion's output folders of these participants' sessions that have raw DSC."""
    return [
        path(derivatives.perfusion_dir(RESULTS, s, ses))
        for s in labels
        for ses in _dsc_sessions().get(s, [])
    ]


def perfusion_input(wildcards):
    if config["dataset"]["simulate"]:
        # The simulator writes the participant's folder as one output.
        return {"raw": f"{BIDS}/sub-{wildcards.subject}"}
    series = raw_dsc_series(BIDS, wildcards.subject, wildcards.session)
    return {"dsc": str(series), "sidecar": str(series).replace(".nii.gz", ".json")}


def perfusion_outputs(wildcards):
    """With computed maps: every session with raw DSC and, for simulated data, their accuracy
    against the simulator's truth (results/qc/perfusion.tsv); none with provided maps.
    """
    if MAPS_DIR is None:
        return []
    outputs = perfusion_session_dirs(SUBJECTS)
    if simulator_truth():
        outputs.append(rules.perfusion_accuracy.output[0])
    return outputs
