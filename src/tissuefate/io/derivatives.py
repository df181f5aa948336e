"""Names of the BIDS-derivative files the pipeline writes, defined once.

Template space: nilearn ships the ICBM 2009a *symmetric* nonlinear template, so the space
label is ``MNI152NLin2009aSym`` (TemplateFlow's name for it).
"""

from __future__ import annotations

from pathlib import Path

from tissuefate.errors import InputError
from tissuefate.names import TARGET_DESC, TARGETS

SPACE = "MNI152NLin2009aSym"

# The model's 8 input channels, in order (METHOD.md section 5).
MAP_NAMES = ("DWI", "ADC", "Tmax", "MTT", "CBF", "CBV")
MASK_NAMES = ("tmax6s", "adc620")
CHANNELS = MAP_NAMES + MASK_NAMES


def participant_dir(results: str | Path, label: str, stage: str = "preprocessing") -> Path:
    return Path(results) / stage / f"sub-{label}"


def participant_label(folder: str | Path) -> str:
    """The label of a participant folder ``.../<stage>/sub-<label>``."""
    name = Path(folder).name
    if not name.startswith("sub-"):
        raise InputError("not a participant folder (sub-<label>)", path=folder)
    return name.removeprefix("sub-")


def results_root(folder: str | Path, stage: str = "preprocessing") -> Path:
    """The results folder above a participant folder a rule gave as input
    (``<results>/<stage>/sub-<label>``): the derivative names below are relative to it."""
    folder = Path(folder)
    participant_label(folder)
    if folder.parent.name != stage:
        raise InputError(f"not a participant folder of the {stage} stage", path=folder)
    return folder.parent.parent


def common_results_root(folders, stage: str = "preprocessing") -> Path:
    """The one results folder above the participant folders a rule gave."""
    roots = {results_root(f, stage) for f in folders}
    if len(roots) != 1:
        raise InputError(f"the {stage} folders of one job lie in {len(roots)} results folders, not one")
    return roots.pop()


def by_participant(folders) -> dict[str, Path]:
    """Participant folders given by a rule, keyed by label."""
    return {participant_label(f): Path(f) for f in folders}


def preproc_map(results: str | Path, label: str, name: str, desc: str = "normalized") -> Path:
    """A baseline map in MNI space.

    ``desc="normalized"``: divided by its parenchymal mean (model input);
    ``desc="preproc"``: in physical units (ADC in 10^-6 mm^2/s, Tmax in s, ...).
    """
    assert name in MAP_NAMES, name
    return participant_dir(results, label) / f"sub-{label}_ses-baseline_space-{SPACE}_desc-{desc}_{name}.nii.gz"


def preproc_mask(results: str | Path, label: str, desc: str) -> Path:
    """A baseline mask in MNI space: brain, coverage, tmax6s, adc620."""
    return participant_dir(results, label) / f"sub-{label}_ses-baseline_space-{SPACE}_desc-{desc}_mask.nii.gz"


def final_infarct_mask(results: str | Path, label: str) -> Path:
    """The follow-up (final) infarct in MNI space: the training and test target."""
    return participant_dir(results, label) / f"sub-{label}_ses-final_space-{SPACE}_desc-infarct_mask.nii.gz"


def flair_map(results: str | Path, label: str, session: str = "final") -> Path:
    """The FLAIR in MNI space (arbitrary units, 0 outside the brain): the follow-up
    (``final``) one is the background of the Fig 3 overlays; a baseline-only FLAIR
    (ISLES 2022) is written with ``ses-baseline``."""
    assert session in ("final", "baseline"), session
    return participant_dir(results, label) / f"sub-{label}_ses-{session}_space-{SPACE}_desc-preproc_FLAIR.nii.gz"


def transform(results: str | Path, label: str, inverse: bool = False) -> Path:
    """Composite ANTs transform between the baseline DWI space and MNI (HDF5)."""
    src, dst = ("dwi", SPACE) if not inverse else (SPACE, "dwi")
    return participant_dir(results, label) / f"sub-{label}_ses-baseline_from-{src}_to-{dst}_mode-image_xfm.h5"


def preproc_summary(results: str | Path, label: str) -> Path:
    """JSON: stroke side, ADC unit found, registration QC measures, voxel size."""
    return participant_dir(results, label) / f"sub-{label}_ses-baseline_desc-preproc_summary.json"




def followup_tmax_path(results: str | Path, label: str) -> Path:
    """The 4-24 h Tmax in MNI space, in seconds (for the reperfusion rate)."""
    return participant_dir(results, label) / f"sub-{label}_ses-followup_space-{SPACE}_desc-preproc_Tmax.nii.gz"


def prediction_dir(results: str | Path, approach: str, target: str, fold: int) -> Path:
    """One model's predictions: its fold's test patients and the cross-applied ones."""
    return Path(results) / "predictions" / approach / target / f"fold-{fold}"


def prediction_map(results: str | Path, approach: str, target: str, fold: int, label: str, native: bool = False) -> Path:
    """Probability map of ``target`` for one participant, in MNI space or on its baseline DWI grid."""
    space = "orig" if native else SPACE
    name = f"sub-{label}_ses-baseline_space-{space}_desc-{TARGET_DESC[target]}_probseg.nii.gz"
    return prediction_dir(results, approach, target, fold) / name


def thresholding_map(results: str | Path, label: str, target: str) -> Path:
    """The thresholding score map of one target, in MNI space (values in [0, 1])."""
    if target not in TARGETS:
        raise KeyError(target)
    folder = participant_dir(results, label, stage="thresholding")
    return folder / f"sub-{label}_ses-baseline_space-{SPACE}_desc-{TARGET_DESC[target]}_probseg.nii.gz"


def probability_map(results: str | Path, approach: str, target: str, fold: int, label: str) -> Path:
    """The MNI probability map an approach gives one participant for one target and fold."""
    if approach == "thresholding":
        return thresholding_map(results, label, target)
    return prediction_map(results, approach, target, fold, label)


def model_dir(results: str | Path, approach: str, target: str | None = None, fold: int | None = None) -> Path:
    if approach == "pretrain":
        return Path(results) / "models" / "pretrain"
    return Path(results) / "models" / approach / target / f"fold-{fold}"


# --- study-level outputs (the rule files name their outputs with these) ------------------

# The result tables of the statistics stage, in the order they are written.
RESULT_TABLES = ("summary", "comparisons", "concordance", "mismatch_summary")


def review_json(results: str | Path, label: str) -> Path:
    """One participant's review (inclusion, reperfusion, volumes) as JSON."""
    return Path(results) / "cohort" / f"sub-{label}" / f"sub-{label}_review.json"


def cohort_file(results: str | Path, name: str) -> Path:
    """The cohort stage's outputs: participants.tsv, table1.tsv, table1.md, flow.png."""
    assert name in ("participants.tsv", "table1.tsv", "table1.md", "flow.png"), name
    return Path(results) / "cohort" / name


def splits_file(results: str | Path) -> Path:
    return Path(results) / "splits" / "splits.json"


def model_file(results: str | Path, name: str, approach: str, target: str | None = None,
               fold: int | str | None = None) -> Path:
    """A training job's outputs: model.pt, curves.tsv, curves.png."""
    assert name in ("model.pt", "curves.tsv", "curves.png"), name
    return model_dir(results, approach, target, fold) / name


def attention_map(results: str | Path, approach: str, target: str, fold: int | str) -> Path:
    return Path(f"{prediction_dir(results, approach, target, fold)}_attention.png")


def metrics_file(results: str | Path, name: str) -> Path:
    """per_case.tsv and mismatch.tsv."""
    assert name in ("per_case", "mismatch"), name
    return Path(results) / "metrics" / f"{name}.tsv"


def table_file(results: str | Path, name: str, ext: str = "tsv") -> Path:
    """A result table (:data:`RESULT_TABLES`) as TSV or Markdown (``ext="md"``)."""
    return Path(results) / "tables" / f"{name}.{ext}"


def figures_dir(results: str | Path) -> Path:
    return Path(results) / "figures"


def registration_table(results: str | Path) -> Path:
    """Registration accuracy against the simulator's truth, per participant."""
    return Path(results) / "qc" / "registration.tsv"


def perfusion_dir(results: str | Path, label: str, session: str) -> Path:
    """Maps computed from one session's raw DSC series (rule perfusion, docs/perfusion.md)."""
    return Path(results) / "perfusion" / f"sub-{label}" / f"ses-{session}"


def perfusion_table(results: str | Path) -> Path:
    """Computed Tmax > threshold against the simulator's truth, per participant and session."""
    return Path(results) / "qc" / "perfusion.tsv"


def dataset_description(results: str | Path) -> Path:
    """``results/`` is a BIDS derivatives dataset: its dataset_description.json."""
    return Path(results) / "dataset_description.json"
