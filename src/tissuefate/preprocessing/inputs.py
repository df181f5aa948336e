"""One participant's raw inputs to the preprocessing, and their checks: every input is read
once and refused with a clear message before anything runs or is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tissuefate.errors import InputError

from tissuefate.io.bids import PERFUSION_MAPS, ParticipantFiles, read_sidecar, validate_label

from tissuefate.io.nifti import load_image
from tissuefate.io.units import resolve_adc_factor
from tissuefate.preprocessing.registration import fov_overlap_fraction, same_grid
from tissuefate.preprocessing.settings import PreprocessingSettings




@dataclass
class ParticipantInputs:
    """The raw files of one participant; optional ones may be None."""

    label: str
    b1000: Path
    adc: Path
    b0: Path | None = None
    perfusion: dict[str, Path] = field(default_factory=dict)  # Tmax, MTT, CBF, CBV or empty
    tmax_followup: Path | None = None
    flair: Path | None = None
    lesion: Path | None = None  # on the FLAIR grid or on the DWI grid
    lesion_description: str = "final infarct (follow-up FLAIR)"
    # The FLAIR's session: "final" (follow-up, days later: the Fig 3 background) or
    # "baseline" (acquired with the DWI, e.g. ISLES 2022).
    flair_session: str = "final"
    # "provided" (the dataset's maps) or "computed" (from raw DSC, perfusion.maps_source).
    perfusion_source: str = "provided"

    @classmethod
    def from_bids(cls, bids_root: str | Path, label: str, maps_dir: str | Path | None = None) -> "ParticipantInputs":
        """``maps_dir``: perfusion maps computed from raw DSC (``io.bids.perfusion_maps_dir``)
        instead of the dataset's own."""
        f = ParticipantFiles(Path(bids_root), validate_label(label), None if maps_dir is None else Path(maps_dir))
        perf = {m: f.baseline(m) for m in PERFUSION_MAPS if f.baseline(m).exists()}
        if perf and len(perf) != len(PERFUSION_MAPS):
            missing = [m for m in PERFUSION_MAPS if m not in perf]
            raise InputError(
                f"only some perfusion maps exist (missing {', '.join(missing)})",
                participant=label,
                path=f.baseline(missing[0]),
                fix="add the missing maps, or remove all four to process the participant without perfusion",
            )
        opt = lambda p: p if p.exists() else None  # noqa: E731
        return cls(
            label=f.label,
            b1000=f.baseline("b1000"),
            adc=f.baseline("adc"),
            b0=opt(f.baseline("b0")),
            perfusion=perf,
            tmax_followup=opt(f.tmax_followup) if perf else None,
            flair=opt(f.flair_final),
            lesion=opt(f.infarct_mask),
            perfusion_source="provided" if maps_dir is None else "computed",
        )


# ---------------------------------------------------------------------------- checks


def _tmax_factor(path: Path, label: str) -> tuple[float, str]:
    units = str(read_sidecar(path, label).get("Units", "")).strip().lower()
    if units in ("s", "sec", "second", "seconds"):
        return 1.0, "s (sidecar)"
    if units in ("ms", "msec", "milliseconds"):
        return 1e-3, "ms (sidecar)"
    if units == "":
        return 1.0, "s (assumed: no Units in the sidecar)"
    raise InputError(f"the Tmax unit {units!r} is not recognised", participant=label, path=path, fix='declare "Units": "s" or "ms" in the sidecar')


def check_inputs(inputs: ParticipantInputs, settings: PreprocessingSettings) -> dict:
    """Read every input once and refuse bad data before anything runs or is written.

    Returns what the workflow needs to know: ADC and Tmax unit factors, the registration
    image, where the lesion mask lives, and the perfusion overlap."""

    lab = inputs.label
    b1000 = load_image(inputs.b1000, lab, what="baseline b1000 DWI")
    adc = load_image(inputs.adc, lab, what="baseline ADC map")
    if inputs.b0 is not None:
        load_image(inputs.b0, lab, what="baseline b0 image")
    dwi = b1000.get_fdata()
    rough_brain = dwi > dwi.mean()  # ANTs' get_mask threshold; enough for the ADC median
    adc_data = adc.get_fdata()
    mask = rough_brain if adc.shape == b1000.shape else None
    factor, source = resolve_adc_factor(
        adc_data, read_sidecar(inputs.adc, lab), settings.adc_unit, participant=lab, path=inputs.adc, brain_mask=mask
    )
    checks: dict = {"adc_factor": factor, "adc_unit_source": source}
    if fov_overlap_fraction(inputs.adc, inputs.b1000) < 0.5:
        raise InputError("the ADC map and the b1000 DWI do not share a field of view", participant=lab, path=inputs.adc, fix="check the ADC header (orientation, origin); it should come from the same DWI series")
    checks["registration_image"] = "b0" if (settings.registration_image == "b0" and inputs.b0 is not None) else "b1000"

    checks["perfusion_overlap"] = {}
    if inputs.perfusion:
        for name, path in inputs.perfusion.items():
            load_image(path, lab, what=f"baseline {name} map")
        checks["tmax_factor"], checks["tmax_unit"] = _tmax_factor(inputs.perfusion["Tmax"], lab)
        to_check = dict(inputs.perfusion)
        if inputs.tmax_followup is not None:
            load_image(inputs.tmax_followup, lab, what="4-24 h follow-up Tmax map")
            to_check["Tmax_followup"] = inputs.tmax_followup
            checks["tmax_followup_factor"], _ = _tmax_factor(inputs.tmax_followup, lab)
        for name, path in to_check.items():
            frac = fov_overlap_fraction(path, inputs.b1000)
            checks["perfusion_overlap"][name] = round(frac, 3)
            if frac < settings.min_perfusion_overlap_fraction:
                raise InputError(
                    f"the {name} map does not overlap the baseline DWI ({100 * frac:.0f} % of its voxels lie inside the DWI field of view)",
                    participant=lab,
                    path=path,
                    fix="check the perfusion header (orientation, origin, voxel size) against the DWI; both come from the same session",
                )
    if inputs.flair is not None:
        if inputs.flair_session not in ("final", "baseline"):
            raise ValueError(f"flair_session must be final or baseline, not {inputs.flair_session!r}")
        load_image(inputs.flair, lab, what=f"{inputs.flair_session} FLAIR")
    checks["lesion_on"] = None
    if inputs.lesion is not None:
        lesion = load_image(inputs.lesion, lab, what="final infarct mask", allow_constant=True)
        if not np.isin(np.unique(lesion.get_fdata()), (0, 1)).all():
            raise InputError("the lesion mask is not binary (values other than 0 and 1)", participant=lab, path=inputs.lesion, fix="threshold the segmentation to 0/1")
        if inputs.flair is not None and same_grid(inputs.lesion, inputs.flair):
            checks["lesion_on"] = "flair"
        elif same_grid(inputs.lesion, inputs.b1000):
            checks["lesion_on"] = "dwi"
        else:
            raise InputError(
                "the lesion mask is on neither the FLAIR grid nor the baseline DWI grid",
                participant=lab,
                path=inputs.lesion,
                fix="save the mask on the grid of the image it was drawn on (the FLAIR)",
            )
    return checks
