"""The study's cohort: per-patient review (exclusions, Tmax volumes, reperfusion group)
and the cohort table (METHOD.md sections 2-3).

Exclusion reasons, checked in this order (the first that applies is recorded):
1. ``no_confirmed_stroke``: participants.tsv says ``ischemic_stroke_confirmed = no``, or
   the final-infarct mask is empty;
2. ``no_baseline_pwi_dwi``: no baseline diffusion or perfusion study (the whole ``dwi/`` or
   ``perf/`` folder is absent), or ``pwi_quality = poor``;
3. ``no_usable_followup``: no final-lesion imaging (FLAIR and its infarct mask);
4. ``complete_reperfusion_at_baseline``: no baseline Tmax > 6 s lesion.

A study folder that exists but lacks one of its maps is a data error, not an exclusion:
the review stops with a message naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from tissuefate.config import section
from tissuefate.errors import InputError
from tissuefate.io.bids import (PERFUSION_MAPS, ParticipantFiles, perfusion_maps_dir, read_sidecar, sidecar_path,
                               validate_label)
from tissuefate.io.nifti import load_image
from tissuefate.io.units import resolve_adc_factor
from tissuefate.measures import voxel_volume_ml
from tissuefate.metrics import mismatch_ratio
from tissuefate.reperfusion import UNKNOWN, reperfusion_group, reperfusion_rate

EXCLUSION_REASONS = (
    "no_confirmed_stroke",
    "no_baseline_pwi_dwi",
    "no_usable_followup",
    "complete_reperfusion_at_baseline",
)
EXCLUSION_LABELS = {
    "no_confirmed_stroke": "No confirmed ischemic stroke at follow-up",
    "no_baseline_pwi_dwi": "No PWI or DWI at arrival, or poor PWI",
    "no_usable_followup": "No usable follow-up lesion",
    "complete_reperfusion_at_baseline": "Complete reperfusion on baseline PWI (no Tmax > 6 s lesion)",
}

COHORT_COLUMNS = (
    "participant_id", "included", "exclusion_reason", "site",
    "tmax_baseline_ml", "tmax_24h_ml", "reperfusion_rate", "reperfusion_group",
    "has_followup_3to7d", "followup_hours", "adc_lesion_baseline_ml", "mismatch_ratio_baseline",
    "final_infarct_ml", "adc_unit_factor", "adc_unit_source",
)


def native_brain_mask(b0: np.ndarray) -> np.ndarray:
    """A rough brain mask on the diffusion grid: bright b0 voxels, largest component, holes filled.

    Only used for the cohort table's baseline DWI lesion volume; registration has its own.
    """
    threshold = 0.15 * float(np.percentile(b0[b0 > 0], 99)) if (b0 > 0).any() else 0.0
    mask = b0 > threshold
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(mask)


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("yes", "true", "1", "y")


def _tmax_volume_ml(path: Path, participant: str, threshold_s: float, what: str) -> float:
    img = load_image(path, participant, what=what, allow_constant=True)
    sidecar = read_sidecar(path, participant)
    units = str(sidecar.get("Units", "s")).strip().lower()
    if units not in ("s", "sec", "second", "seconds"):
        raise InputError(
            f"the {what} is declared in {sidecar.get('Units')!r}, Tmax must be in seconds",
            participant=participant, path=sidecar_path(path),
            fix='convert the map to seconds and set "Units": "s" in the sidecar',
        )
    data = np.asarray(img.dataobj)
    return float((data > threshold_s).sum()) * voxel_volume_ml(img)


def review_participant(bids_root: str | Path, participant: str, clinical: dict, config: dict) -> dict:
    """Check one participant's raw data and decide inclusion; returns one cohort row.

    ``clinical``: the participant's row of participants.tsv (may lack optional columns).
    Raises InputError for bad data (missing map of a present study, unreadable, NaN, ...).
    """
    label = validate_label(participant)
    files = ParticipantFiles(Path(bids_root), label, perfusion_maps_dir(config))
    sub = files.sub
    cohort_cfg = config["cohort"]
    threshold_s = float(cohort_cfg["tmax_threshold_s"])
    row: dict = {c: math.nan for c in COHORT_COLUMNS}
    row.update(participant_id=sub, site=clinical.get("site", "n/a"), exclusion_reason="n/a",
               reperfusion_group="n/a", has_followup_3to7d=False, adc_unit_source="n/a")

    if not files.folder.is_dir():
        raise InputError("the participant's folder is missing", participant=sub, path=files.folder,
                         fix="add the folder or remove the participant's row from participants.tsv")

    # Baseline diffusion: present as a study, or absent as a whole.
    dwi_dir = files.baseline("b1000").parent
    has_dwi = dwi_dir.is_dir()
    if has_dwi:
        b0 = load_image(files.baseline("b0"), sub, what="baseline b=0 image")
        load_image(files.baseline("b1000"), sub, what="baseline b=1000 DWI")
        adc_img = load_image(files.baseline("adc"), sub, what="baseline ADC map")
        adc = np.asarray(adc_img.dataobj)
        brain = native_brain_mask(np.asarray(b0.dataobj))
        factor, source = resolve_adc_factor(
            adc, read_sidecar(files.baseline("adc"), sub), config["preprocessing"]["adc_unit"],
            participant=sub, path=files.baseline("adc"), brain_mask=brain,
        )
        adc_um2 = adc * factor
        threshold_adc = float(config["preprocessing"]["adc_threshold_um2_per_s"])
        lesion = brain & (adc_um2 > 0) & (adc_um2 < threshold_adc)
        row.update(adc_unit_factor=factor, adc_unit_source=source,
                   adc_lesion_baseline_ml=float(lesion.sum()) * voxel_volume_ml(adc_img))

    # Baseline perfusion.
    perf_dir = files.baseline("Tmax").parent
    has_pwi = perf_dir.is_dir()
    if has_pwi:
        for name in PERFUSION_MAPS:
            if name != "Tmax":
                load_image(files.baseline(name), sub, what=f"baseline {name} map")
        row["tmax_baseline_ml"] = _tmax_volume_ml(files.baseline("Tmax"), sub, threshold_s, "baseline Tmax map")

    # 4-24 h perfusion for the reperfusion rate.
    if files.tmax_followup.parent.is_dir():
        row["tmax_24h_ml"] = _tmax_volume_ml(files.tmax_followup, sub, threshold_s, "4-24 h Tmax map")

    # Final lesion imaging.
    has_final = files.flair_final.parent.is_dir()
    final_empty = False
    if has_final:
        load_image(files.flair_final, sub, what="follow-up FLAIR")
        mask_img = load_image(files.infarct_mask, sub, what="final-infarct mask", allow_constant=True)
        mask = np.asarray(mask_img.dataobj)
        if not np.isin(np.unique(mask), (0, 1)).all():
            raise InputError("the final-infarct mask is not binary (values other than 0 and 1)",
                             participant=sub, path=files.infarct_mask, fix="threshold the mask at 0.5 and save it as 0/1")
        row["final_infarct_ml"] = float(mask.sum()) * voxel_volume_ml(mask_img)
        final_empty = not mask.any()
        hours = read_sidecar(files.flair_final, sub).get("HoursSinceBaseline")
        if hours is None:
            raise InputError('the follow-up FLAIR sidecar has no "HoursSinceBaseline"', participant=sub,
                             path=sidecar_path(files.flair_final),
                             fix='add "HoursSinceBaseline": hours from baseline imaging to this scan')
        low, high = cohort_cfg["followup_test_window_h"]
        row["followup_hours"] = float(hours)
        row["has_followup_3to7d"] = bool(low <= float(hours) <= high)

    # Exclusions, in the paper's order.
    confirmed = str(clinical.get("ischemic_stroke_confirmed", "yes")).strip().lower() != "no"
    poor_pwi = str(clinical.get("pwi_quality", "good")).strip().lower() == "poor"
    reason = None
    if not confirmed or (has_final and final_empty):
        reason = "no_confirmed_stroke"
    elif not has_dwi or not has_pwi or poor_pwi:
        reason = "no_baseline_pwi_dwi"
    elif not has_final:
        reason = "no_usable_followup"
    elif row["tmax_baseline_ml"] <= float(cohort_cfg["complete_reperfusion_max_ml"]):
        reason = "complete_reperfusion_at_baseline"

    # NaN volumes (no study) compare False and leave the ratio undefined.
    if row["tmax_baseline_ml"] > 0 and row["adc_lesion_baseline_ml"] >= 0:
        cap = float(section(config, "evaluation")["mismatch_ratio_cap"])
        row["mismatch_ratio_baseline"] = mismatch_ratio(row["tmax_baseline_ml"], row["adc_lesion_baseline_ml"], cap)

    row["included"] = reason is None
    if reason is not None:
        row["exclusion_reason"] = reason
        return row
    row["reperfusion_rate"] = reperfusion_rate(row["tmax_baseline_ml"], row["tmax_24h_ml"])
    row["reperfusion_group"] = reperfusion_group(
        row["reperfusion_rate"],
        float(cohort_cfg["minimal_reperfusion_max_percent"]),
        float(cohort_cfg["major_reperfusion_min_percent"]),
    )
    return row


def build_cohort(reviews: list[dict], participants: pd.DataFrame) -> pd.DataFrame:
    """Join the per-patient reviews with the clinical columns of participants.tsv."""
    cohort = pd.DataFrame(reviews, columns=list(COHORT_COLUMNS))
    clinical = participants.drop(columns=[c for c in ("site",) if c in participants.columns and c in cohort.columns])
    merged = cohort.merge(clinical, on="participant_id", how="left", validate="one_to_one")
    merged = merged.sort_values("participant_id", kind="stable").reset_index(drop=True)
    return merged


def group_counts(cohort: pd.DataFrame) -> dict[str, int]:
    inc = cohort[cohort["included"].astype(bool)]
    return {g: int((inc["reperfusion_group"] == g).sum()) for g in ("minimal", "partial", "major", UNKNOWN)}
