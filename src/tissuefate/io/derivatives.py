"""Names of the BIDS-derivative files the pipeline writes, defined once.

Template space: nilearn ships the ICBM 2009a *symmetric* nonlinear template, so the space
label is ``MNI152NLin2009aSym`` (TemplateFlow's name for it).
"""

from __future__ import annotations

from pathlib import Path

SPACE = "MNI152NLin2009aSym"

# The model's 8 input channels, in order (METHOD.md section 5).
MAP_NAMES = ("DWI", "ADC", "Tmax", "MTT", "CBF", "CBV")
MASK_NAMES = ("tmax6s", "adc620")
CHANNELS = MAP_NAMES + MASK_NAMES


def participant_dir(results: str | Path, label: str, stage: str = "preprocessing") -> Path:
    return Path(results) / stage / f"sub-{label}"


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


# BIDS labels are alphanumeric: the targets' desc- labels.
TARGET_DESC = {"tissue_at_risk": "tissueatrisk", "ischemic_core": "ischemiccore"}


def prediction_dir(results: str | Path, approach: str, target: str, fold: int) -> Path:
    """One model's predictions: its fold's test patients and the cross-applied ones."""
    return Path(results) / "predictions" / approach / target / f"fold-{fold}"


def prediction_map(results: str | Path, approach: str, target: str, fold: int, label: str, native: bool = False) -> Path:
    """Probability map of ``target`` for one participant, in MNI space or on its baseline DWI grid."""
    space = "orig" if native else SPACE
    name = f"sub-{label}_ses-baseline_space-{space}_desc-{TARGET_DESC[target]}_probseg.nii.gz"
    return prediction_dir(results, approach, target, fold) / name


def model_dir(results: str | Path, approach: str, target: str | None = None, fold: int | None = None) -> Path:
    if approach == "pretrain":
        return Path(results) / "models" / "pretrain"
    return Path(results) / "models" / approach / target / f"fold-{fold}"
