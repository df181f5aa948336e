"""The per-participant preprocessing job: a nipype workflow of small antspyx interfaces.

    ADC, perfusion (via CBV), follow-up Tmax, FLAIR --rigid--> baseline DWI space
    baseline DWI (b0, else b1000) --affine + SyN, lesion masked out--> MNI template
    every map (and the FLAIR) --one composed transform--> MNI; masks, normalization,
    stroke side; QC

Entry point for the rule: :func:`preprocess_participant`. Everything is checked before
anything is written (:class:`tissuefate.errors.InputError`); a registration that fails its
QC measures is flagged in the summary (or stops the job, ``on_registration_failure: error``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.atomic import atomic_path
from tissuefate.io.bids import PERFUSION_MAPS, ParticipantFiles, read_sidecar, validate_label, write_json
from tissuefate.io.derivatives import SPACE
from tissuefate.io.nifti import load_image, save_image
from tissuefate.io.units import resolve_adc_factor
from tissuefate.preprocessing import normalization as norm
from tissuefate.preprocessing.template import TemplateFiles, template_files


@dataclass(frozen=True)
class PreprocessingSettings:
    """The ``preprocessing:`` section of the config (plus ``cohort.tmax_threshold_s``)."""

    adc_unit: str = "sidecar"
    adc_threshold_um2_per_s: float = 620.0
    tmax_threshold_s: float = 6.0
    template_resolution_mm: float = 2.0  # the MNI grid of every output
    registration_resolution_mm: int | str = "auto"  # template grid the registration runs on
    registration_image: str = "b0"  # b0 or b1000; b1000 is used when there is no b0
    template_contrast: str = "synthetic"  # synthetic (b0-/b1000-like) or t1
    syn_iterations: tuple[int, ...] = (40, 20, 0)
    lesion_exclusion_dilation_mm: float = 4.0
    lesion_exclusion_min_cluster_ml: float = 0.5
    adc_mask_min_dwi_ratio: float = 1.0
    adc_min_valid_um2_per_s: float = 100.0
    csf_adc_min_um2_per_s: float = 1500.0
    parenchyma_tissue_min_probability: float = 0.5
    bilateral_min_fraction: float = 0.25
    stroke_side_min_cluster_ml: float = 1.0
    min_perfusion_overlap_fraction: float = 0.05
    qc_min_mutual_information: float = 0.10
    qc_min_brain_dice: float = 0.80
    qc_brain_volume_ratio_range: tuple[float, float] = (0.5, 2.0)
    qc_max_nonlinear_p95_mm: float = 6.0
    on_registration_failure: str = "flag"  # flag or error
    random_seed: int = 20210401  # the config's top-level seed when there is one

    @classmethod
    def from_config(cls, config: dict | None) -> "PreprocessingSettings":
        config = config or {}
        pre = dict(config.get("preprocessing") or {})
        if "tmax_threshold_s" not in pre and "tmax_threshold_s" in (config.get("cohort") or {}):
            pre["tmax_threshold_s"] = config["cohort"]["tmax_threshold_s"]
        if "random_seed" not in pre and "seed" in config:
            pre["random_seed"] = int(config["seed"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(pre) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing settings: {unknown}")
        if "syn_iterations" in pre:
            pre["syn_iterations"] = tuple(int(i) for i in pre["syn_iterations"])
        if "qc_brain_volume_ratio_range" in pre:
            pre["qc_brain_volume_ratio_range"] = tuple(float(v) for v in pre["qc_brain_volume_ratio_range"])
        settings = cls(**pre)
        if settings.registration_image not in ("b0", "b1000"):
            raise ValueError("preprocessing.registration_image must be b0 or b1000")
        if settings.registration_resolution_mm != "auto" and not isinstance(settings.registration_resolution_mm, int):
            raise ValueError("preprocessing.registration_resolution_mm must be auto or a whole number of mm")
        if settings.template_contrast not in ("synthetic", "t1"):
            raise ValueError("preprocessing.template_contrast must be synthetic or t1")
        if settings.on_registration_failure not in ("flag", "error"):
            raise ValueError("preprocessing.on_registration_failure must be flag or error")
        return settings


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

    @classmethod
    def from_bids(cls, bids_root: str | Path, label: str, maps_dir: str | Path | None = None) -> "ParticipantInputs":
        """``maps_dir``: read the perfusion maps from there (tissuefate.io.bids.perfusion_maps_dir)."""
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
        )


def followup_tmax_path(results: str | Path, label: str) -> Path:
    """The 4-24 h Tmax in MNI space, in seconds (for the reperfusion rate)."""
    return derivatives.participant_dir(results, label) / f"sub-{label}_ses-followup_space-{SPACE}_desc-preproc_Tmax.nii.gz"


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
    from tissuefate.preprocessing.registration import fov_overlap_fraction, same_grid

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


# ---------------------------------------------------------------------------- MNI stage


def derive_mni_maps(warped: dict[str, str], template_mask: str, tissue_probseg: str, params: dict, out_dir: str) -> tuple[dict, dict]:
    """Masks, parenchymal-mean normalization and stroke side from the maps warped to MNI.

    ``warped`` keys: DWI, ADC, dwi_fov, adc_fov, and when available Tmax, MTT, CBF, CBV,
    perf_fov, Tmax_followup, followup_fov, FLAIR, final_infarct. Returns (output key ->
    file, summary numbers)."""
    tm_img = nib.load(template_mask)
    affine = tm_img.affine
    load = lambda k: nib.load(warped[k]).get_fdata(dtype=np.float32)  # noqa: E731
    has_perf = "Tmax" in warped
    brain = (tm_img.get_fdata() > 0) & (load("dwi_fov") > 0.5)
    diffusion_fov = (load("dwi_fov") > 0.5) & (load("adc_fov") > 0.5)
    coverage = norm.coverage_mask(brain, diffusion_fov, load("perf_fov") > 0.5 if has_perf else None)
    adc_um = load("ADC") * float(params["adc_factor"])
    tmax_s = load("Tmax") * float(params["tmax_factor"]) if has_perf else None
    kw = dict(adc_min_valid_um2_per_s=params["adc_min_valid_um2_per_s"])
    tmax6, adc620 = norm.threshold_masks(
        tmax_s, adc_um, coverage, tmax_threshold_s=params["tmax_threshold_s"], adc_threshold_um2_per_s=params["adc_threshold_um2_per_s"], **kw
    )
    # The parenchyma excludes every low-ADC voxel (before the DWI condition below).
    lesion = adc620 if tmax6 is None else (adc620 | tmax6)
    tissue = nib.load(tissue_probseg).get_fdata(dtype=np.float32)
    parenchyma = norm.parenchyma_mask(
        coverage,
        tissue,
        adc_um,
        lesion,
        tissue_min_probability=params["parenchyma_tissue_min_probability"],
        csf_adc_min_um2_per_s=params["csf_adc_min_um2_per_s"],
        **kw,
    )
    files: dict[str, str] = {}
    out = Path(out_dir)

    def save(key: str, data: np.ndarray, dtype=np.float32) -> None:
        path = out / f"{key}.nii.gz"
        save_image(data, affine, path, dtype=dtype)
        files[key] = str(path)

    physical = {"DWI": load("DWI"), "ADC": adc_um}
    if has_perf:
        physical.update(Tmax=tmax_s, MTT=load("MTT"), CBF=load("CBF"), CBV=load("CBV"))
    means = {}
    for name, data in physical.items():
        save(f"{name}_preproc", np.where(brain, data, 0.0))
        try:
            normalized, means[name] = norm.normalize_map(data, parenchyma, coverage)
        except ValueError as err:
            raise InputError(
                f"the {name} map cannot be normalized: {err} in the parenchyma of the coverage mask",
                participant=params.get("label"),
                fix="check the map in the QC figure (empty, negative or misregistered)",
            ) from None
        save(f"{name}_normalized", normalized)
        if name == "DWI" and params["adc_mask_min_dwi_ratio"] > 0:
            # Restricted diffusion is bright on DWI: a low ADC darker than normal tissue is
            # partial volume with signal-free background (brain surface), not lesion.
            adc620 &= normalized >= params["adc_mask_min_dwi_ratio"]
    save("mask_brain", brain, np.uint8)
    save("mask_coverage", coverage, np.uint8)
    save("mask_adc620", adc620, np.uint8)
    if tmax6 is not None:
        save("mask_tmax6s", tmax6, np.uint8)
    summary: dict = {
        "parenchymal_mean": {k: round(v, 6) for k, v in means.items()},
        "parenchyma_ml": round(norm.volume_ml(parenchyma, affine), 2),
        "brain_ml": round(norm.volume_ml(brain, affine), 2),
        "coverage_ml": round(norm.volume_ml(coverage, affine), 2),
        "coverage_fraction_of_brain": round(float(coverage.sum() / max(brain.sum(), 1)), 4),
        "adc620_ml": round(norm.volume_ml(adc620, affine), 2),
        "tmax6s_ml": None if tmax6 is None else round(norm.volume_ml(tmax6, affine), 2),
    }
    if "Tmax_followup" in warped:
        fu = load("Tmax_followup") * float(params["tmax_followup_factor"])
        fu_cov = coverage & (load("followup_fov") > 0.5)
        save("Tmax_followup_preproc", np.where(brain, fu, 0.0))
        summary["followup_tmax6s_ml"] = round(norm.volume_ml(fu_cov & (fu > params["tmax_threshold_s"]), affine), 2)
        summary["followup_baseline_common_coverage_ml"] = round(norm.volume_ml(fu_cov, affine), 2)
        summary["baseline_tmax6s_in_common_coverage_ml"] = round(norm.volume_ml(fu_cov & tmax6, affine), 2)
    if "FLAIR" in warped:
        # The Fig 3 background only: arbitrary units, neither normalized nor a model input.
        save("FLAIR_preproc", np.where(brain, load("FLAIR"), 0.0))
    final = None
    if "final_infarct" in warped:
        final = norm.binarize_preserving_volume(load("final_infarct"))
        save("final_infarct", final, np.uint8)
        summary["final_infarct_ml"] = round(norm.volume_ml(final, affine), 2)
    # Stroke side for the ipsilateral AUC: the final infarct's hemisphere(s) when there is
    # one; for a new patient, the baseline lesion's clusters in tissue (not the scattered
    # low-ADC voxels of real data).
    lesion = adc620 if tmax6 is None else (adc620 | tmax6)
    side_lesion = norm.remove_small_clusters(lesion & (tissue >= 0.5), affine, params["stroke_side_min_cluster_ml"])
    base_side, left, right = norm.stroke_side(side_lesion, affine, bilateral_min_fraction=params["bilateral_min_fraction"])
    summary["stroke_side_baseline"] = base_side
    summary["stroke_side_baseline_lesion_ml"] = {"left": round(left, 2), "right": round(right, 2)}
    side, source = base_side, "baseline Tmax>6s or ADC<620" if has_perf else "baseline ADC<620"
    if final is not None and final.any():
        side, _, _ = norm.stroke_side(final, affine, bilateral_min_fraction=params["bilateral_min_fraction"])
        source = "final infarct"
    if side is None:
        side, source = "bilateral", "no lesion found: both hemispheres"
    summary["stroke_side"] = side
    summary["stroke_side_source"] = source
    return files, summary


# ---------------------------------------------------------------------------- workflow


def registration_resolution(image: str | Path, setting: int | str = "auto") -> int:
    """The template grid to register ``image`` on: ``auto`` is the image's voxel size
    (geometric mean, whole mm, 2 to 4). Registering finer than the data gains nothing and,
    on the simulated cohorts, cost 50 % more displacement and a 3-10 % volume bias."""
    if setting != "auto":
        return int(setting)
    zooms = nib.load(str(image)).header.get_zooms()[:3]
    return int(np.clip(round(float(np.prod(zooms)) ** (1 / 3)), 2, 4))


def build_workflow(
    inputs: ParticipantInputs,
    settings: PreprocessingSettings,
    template: TemplateFiles,
    checks: dict,
    base_dir: str | Path,
    registration_template: TemplateFiles | None = None,
):
    """The nipype workflow of one participant (run it with ``.run()``). ``template`` gives
    the output grid; ``registration_template`` (default: the same) the registration's."""
    import nipype.interfaces.utility as niu
    import nipype.pipeline.engine as pe

    from tissuefate.preprocessing import interfaces as itf

    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    nipype_config.set("logging", "workflow_level", "WARNING")
    nipype_config.set("logging", "interface_level", "WARNING")
    nipype_logging.update_logging(nipype_config)
    wf = pe.Workflow(name=f"preproc_{inputs.label}", base_dir=str(base_dir))
    wf.config["execution"] = {
        "stop_on_first_crash": "true",
        "remove_unnecessary_outputs": "false",
        "crashfile_format": "txt",
        "crashdump_dir": str(base_dir),
        "create_report": "false",
    }
    reg_image = str(inputs.b0 if checks["registration_image"] == "b0" else inputs.b1000)
    reg_tpl = registration_template or template
    tpl = str(reg_tpl.registration_target(checks["registration_image"], settings.template_contrast))
    reg_mask = str(reg_tpl.brain_mask)
    tmask = str(template.brain_mask)

    def rigid(name: str, fixed, moving, **kw):
        node = itf.RigidCoregistration(fixed_image=str(fixed), moving_image=str(moving), random_seed=settings.random_seed, **kw)
        return pe.Node(node, name=f"coreg_{name}")

    adc_reg = rigid("adc", inputs.b1000, inputs.adc, identity_if_same_grid=True)
    lesmask = pe.Node(
        itf.LesionMetricMask(
            adc=str(inputs.adc),
            dwi=str(inputs.b1000),
            reference=reg_image,
            adc_factor=checks["adc_factor"],
            adc_threshold_um2_per_s=settings.adc_threshold_um2_per_s,
            adc_min_valid_um2_per_s=settings.adc_min_valid_um2_per_s,
            dilation_mm=settings.lesion_exclusion_dilation_mm,
            csf_adc_min_um2_per_s=settings.csf_adc_min_um2_per_s,
            min_dwi_ratio=settings.adc_mask_min_dwi_ratio,
            min_cluster_ml=settings.lesion_exclusion_min_cluster_ml,
        ),
        name="lesion_metric_mask",
    )
    normalize = pe.Node(
        itf.TemplateNormalization(
            moving_image=reg_image, template=tpl, template_mask=reg_mask, syn_iterations=list(settings.syn_iterations), random_seed=settings.random_seed
        ),
        name="normalize",
    )
    wf.connect([(adc_reg, lesmask, [("transforms", "adc_transforms")]), (lesmask, normalize, [("metric_mask", "metric_mask")])])

    warps: list[tuple[str, object]] = []

    def warp(key: str, moving: str, *, interp: str = "linear", fov: bool = False, native=None, session=None):
        node = pe.Node(
            itf.ApplyTransforms(moving_image=moving, reference_image=tmask, interpolation=interp, field_of_view=fov, out_name=f"{key}.nii.gz"),
            name=f"warp_{key}",
        )
        wf.connect(normalize, "forward_transform", node, "template_transform")
        if native is not None:
            wf.connect(native, "transforms", node, "native_transforms")
        if session is not None:
            wf.connect(session, "transforms", node, "session_transforms")
        warps.append((key, node))

    warp("DWI", str(inputs.b1000))
    warp("dwi_fov", str(inputs.b1000), fov=True)
    warp("ADC", str(inputs.adc), native=adc_reg)
    warp("adc_fov", str(inputs.adc), fov=True, native=adc_reg)
    if inputs.perfusion:
        perf_reg = rigid("perfusion", reg_image, inputs.perfusion["CBV"])
        for name, path in inputs.perfusion.items():
            warp(name, str(path), native=perf_reg)
        warp("perf_fov", str(inputs.perfusion["CBV"]), fov=True, native=perf_reg)
        if inputs.tmax_followup is not None:
            fu_reg = rigid("followup_tmax", inputs.perfusion["Tmax"], inputs.tmax_followup, rank_intensities=True)
            warp("Tmax_followup", str(inputs.tmax_followup), native=perf_reg, session=fu_reg)
            warp("followup_fov", str(inputs.tmax_followup), fov=True, native=perf_reg, session=fu_reg)
    if inputs.flair is not None:
        # A follow-up FLAIR is from another session days later: start from the centres of mass.
        init = "center_of_mass" if inputs.flair_session == "final" else "identity"
        flair_reg = rigid("flair", reg_image, inputs.flair, initialization=init)
        warp("FLAIR", str(inputs.flair), native=flair_reg)
    if checks["lesion_on"] == "flair":
        warp("final_infarct", str(inputs.lesion), native=flair_reg)
    elif checks["lesion_on"] == "dwi":
        warp("final_infarct", str(inputs.lesion))  # linear: binarized keeping its volume (derive_mni_maps)

    merge = pe.Node(niu.Merge(len(warps)), name="collect")
    for k, (_, node) in enumerate(warps, start=1):
        wf.connect(node, "output_image", merge, f"in{k}")
    params = {
        "label": inputs.label,
        "adc_factor": checks["adc_factor"],
        "tmax_factor": checks.get("tmax_factor", 1.0),
        "tmax_followup_factor": checks.get("tmax_followup_factor", 1.0),
        "tmax_threshold_s": settings.tmax_threshold_s,
        "adc_threshold_um2_per_s": settings.adc_threshold_um2_per_s,
        "adc_min_valid_um2_per_s": settings.adc_min_valid_um2_per_s,
        "csf_adc_min_um2_per_s": settings.csf_adc_min_um2_per_s,
        "parenchyma_tissue_min_probability": settings.parenchyma_tissue_min_probability,
        "bilateral_min_fraction": settings.bilateral_min_fraction,
        "stroke_side_min_cluster_ml": settings.stroke_side_min_cluster_ml,
        "adc_mask_min_dwi_ratio": settings.adc_mask_min_dwi_ratio,
    }
    derive = pe.Node(
        itf.DeriveMNIMaps(warped_names=[k for k, _ in warps], template_mask=tmask, tissue_probseg=str(template.tissue_probseg), params=params),
        name="derive_mni_maps",
    )
    wf.connect(merge, "out", derive, "warped_files")

    foreground = pe.Node(itf.NativeForeground(image=str(inputs.b1000)), name="native_foreground")
    warp_fg = pe.Node(itf.ApplyTransforms(reference_image=reg_mask, interpolation="genericLabel", out_name="foreground.nii.gz"), name="warp_foreground")
    measures = pe.Node(itf.RegistrationMeasures(template=tpl, template_mask=reg_mask), name="registration_measures")
    wf.connect(
        [
            (foreground, warp_fg, [("mask", "moving_image")]),
            (normalize, warp_fg, [("forward_transform", "template_transform")]),
            (normalize, measures, [("warped_image", "warped_image"), ("forward_transform", "forward_transform")]),
            (warp_fg, measures, [("output_image", "foreground_mni")]),
        ]
    )
    return wf


def _reraise_input_error(err: Exception) -> None:
    """nipype wraps a node's exception in its own; give the researcher our message back."""
    match = re.search(r"InputError: (.+)", str(err))
    if match:
        wrapped = InputError.__new__(InputError)
        Exception.__init__(wrapped, match.group(1).strip())
        wrapped.problem, wrapped.participant, wrapped.path, wrapped.fix = match.group(1).strip(), None, None, None
        raise wrapped from None


def _copy(src: str | Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _output_path(key: str, results: Path, label: str, flair_session: str = "final") -> Path:
    if key == "final_infarct":
        return derivatives.final_infarct_mask(results, label)
    if key == "FLAIR_preproc":
        return derivatives.flair_map(results, label, flair_session)
    if key == "Tmax_followup_preproc":
        return followup_tmax_path(results, label)
    if key.startswith("mask_"):
        return derivatives.preproc_mask(results, label, key[len("mask_"):])
    name, desc = key.rsplit("_", 1)
    return derivatives.preproc_map(results, label, name, desc)


LIMITATIONS_WITHOUT_PERFUSION = (
    "no baseline perfusion maps: Tmax, MTT, CBF, CBV and the Tmax > 6 s mask are not produced; the coverage mask is "
    "diffusion-only; the 8-channel models and the tissue-at-risk thresholding cannot run for this participant, the "
    "reperfusion group cannot be derived; registration to MNI, the DWI and ADC maps, the ADC < 620 mask, the "
    "ischemic-core thresholding and the lesion warp are available"
)
LIMITATION_NO_FLAIR = "no FLAIR: none is written in MNI; the Fig 3 overlays fall back to the baseline DWI"
LIMITATION_BASELINE_FLAIR = (
    "baseline FLAIR only (no follow-up FLAIR): it is written in MNI as ses-baseline; the Fig 3 overlays fall back "
    "to the baseline DWI"
)


def preprocess_inputs(
    inputs: ParticipantInputs,
    results: str | Path,
    settings: PreprocessingSettings = PreprocessingSettings(),
    *,
    template_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    keep_work: bool = False,
) -> dict:
    """Run the per-participant workflow on explicit inputs (any layout, e.g. ISLES 2022);
    write the derivatives under ``results`` and return the summary (also written as JSON)."""
    t0 = time.perf_counter()
    label, results = inputs.label, Path(results)
    checks = check_inputs(inputs, settings)
    template_dir = template_dir or results / "preprocessing" / "template"
    template = template_files(settings.template_resolution_mm, template_dir)
    reg_image_path = inputs.b0 if checks["registration_image"] == "b0" else inputs.b1000
    reg_res = registration_resolution(reg_image_path, settings.registration_resolution_mm)
    reg_template = template if reg_res == settings.template_resolution_mm else template_files(reg_res, template_dir)
    work_root = Path(work_dir) if work_dir else results / "preprocessing" / ".work"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"sub-{label}.", dir=work_root))
    try:
        wf = build_workflow(inputs, settings, template, checks, work, reg_template)
        try:
            graph = wf.run(plugin="Linear")
        except Exception as err:  # nipype's NodeExecutionError / RuntimeError
            _reraise_input_error(err)
            raise
        res = {node.name: node.result.outputs for node in graph.nodes()}
        node_seconds = {node.name: round(float(getattr(node.result.runtime, "duration", 0.0) or 0.0), 2) for node in graph.nodes()}
        derived, numbers = res["derive_mni_maps"].out_files, res["derive_mni_maps"].summary
        measures = dict(res["registration_measures"].measures)
        from tissuefate.preprocessing.qc import qc_figure, qc_figure_path, qc_verdict

        passed, reasons = qc_verdict(
            measures,
            min_mutual_information=settings.qc_min_mutual_information,
            min_brain_dice=settings.qc_min_brain_dice,
            brain_volume_ratio_range=settings.qc_brain_volume_ratio_range,
            max_nonlinear_p95_mm=settings.qc_max_nonlinear_p95_mm,
        )
        outputs: dict[str, str] = {}
        for key, src in derived.items():
            dst = _output_path(key, results, label, inputs.flair_session)
            _copy(src, dst)
            outputs[key] = str(dst)
        fwd, inv = derivatives.transform(results, label), derivatives.transform(results, label, inverse=True)
        _copy(res["normalize"].forward_transform, fwd)
        _copy(res["normalize"].inverse_transform, inv)
        outputs.update(transform=str(fwd), inverse_transform=str(inv))
        maps = {k.split("_")[0]: v for k, v in derived.items() if k.endswith("_normalized")}
        masks = {k: derived[f"mask_{k}"] for k in ("tmax6s", "adc620") if f"mask_{k}" in derived}
        if "final_infarct" in derived:
            masks["final_infarct"] = derived["final_infarct"]
        title = f"sub-{label}  MI {measures['mutual_information']:.3f}  brain Dice {measures['brain_dice_template']:.3f}  side {numbers['stroke_side']}"
        fig = qc_figure(qc_figure_path(results, label), title=title, template_mask=template.brain_mask, maps=maps, masks=masks, passed=passed)
        outputs["qc_figure"] = str(fig)
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
            try:
                work_root.rmdir()  # only when no other participant's job is using it
            except OSError:
                pass

    summary = {
        "participant_id": f"sub-{label}",
        "space": SPACE,
        "template_resolution_mm": settings.template_resolution_mm,
        "registration_resolution_mm": reg_res,
        "registration_image": checks["registration_image"],
        "adc_unit": {"factor_to_um2_per_s": checks["adc_factor"], "source": checks["adc_unit_source"]},
        "tmax_unit": checks.get("tmax_unit"),
        "has_perfusion": bool(inputs.perfusion),
        "has_followup_tmax": inputs.tmax_followup is not None and bool(inputs.perfusion),
        "final_lesion": None if checks["lesion_on"] is None else {"source": inputs.lesion_description, "drawn_on": checks["lesion_on"]},
        "flair_session": None if inputs.flair is None else inputs.flair_session,
        "limitations": [] if inputs.perfusion else [LIMITATIONS_WITHOUT_PERFUSION],
        "perfusion_overlap_fraction": checks["perfusion_overlap"],
        "lesion_metric_mask_excluded_ml": round(float(res["lesion_metric_mask"].excluded_ml), 2),
        **numbers,
        "registration_qc": {**measures, "passed": passed, "reasons": reasons},
        "outputs": {k: os.path.relpath(v, results) for k, v in outputs.items()},
        "runtime_s": round(time.perf_counter() - t0, 2),
        "node_seconds": node_seconds,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
    }
    if inputs.flair is None:
        summary["limitations"].append(LIMITATION_NO_FLAIR)
    elif inputs.flair_session != "final":
        summary["limitations"].append(LIMITATION_BASELINE_FLAIR)
    if inputs.lesion is None:
        summary["limitations"].append("no final lesion mask: the participant can be predicted but not used for training or testing")
    write_json(derivatives.preproc_summary(results, label), summary)
    import logging

    log = logging.getLogger("tissuefate")
    log.info("sub-%s: preprocessed in %.1f s, registration QC %s", label, summary["runtime_s"], "passed" if passed else "FAILED")
    for line in summary["limitations"]:
        log.warning("sub-%s: %s", label, line)
    if not passed:
        log.warning("sub-%s: registration failed QC: %s", label, "; ".join(reasons))
        if settings.on_registration_failure == "error":
            from tissuefate.preprocessing.qc import RegistrationQCError

            raise RegistrationQCError(
                "the normalization to MNI failed QC (" + "; ".join(reasons) + ")",
                participant=label,
                path=inputs.b0 if checks["registration_image"] == "b0" else inputs.b1000,
                fix="look at the QC figure; check the image is a brain DWI in a sensible orientation",
            )
    return summary


def preprocess_participant(
    label: str,
    bids_root: str | Path,
    results: str | Path,
    config: dict | PreprocessingSettings | None = None,
    *,
    template_dir: str | Path | None = None,
    maps_dir: str | Path | None = None,
) -> dict:
    """The per-participant job a rule calls: raw BIDS participant -> MNI-space derivatives
    (maps, masks, final infarct, transforms, QC figure, summary JSON). ``config`` is the
    whole workflow config (``preprocessing`` and ``cohort.tmax_threshold_s`` are read);
    ``maps_dir``: read the perfusion maps from there (tissuefate.io.bids.perfusion_maps_dir)."""
    settings = config if isinstance(config, PreprocessingSettings) else PreprocessingSettings.from_config(config)
    inputs = ParticipantInputs.from_bids(bids_root, label, maps_dir)
    return preprocess_inputs(inputs, results, settings, template_dir=template_dir)


def to_native(
    prob_mni_path: str | Path,
    label: str,
    results: str | Path,
    bids_root: str | Path | None,
    out_path: str | Path | None = None,
    *,
    interpolation: str = "linear",
    reference: str | Path | None = None,
) -> nib.Nifti1Image:
    """Map an MNI-space image (e.g. a predicted probability map) back onto the patient's
    baseline b1000 DWI grid with the saved inverse transform (one linear resampling; use
    ``interpolation="genericLabel"`` for masks). Written to ``out_path`` if given.
    ``reference`` replaces the b1000 of ``bids_root`` for data in another layout."""
    from tissuefate.preprocessing.registration import apply_transforms

    label = validate_label(label)
    inv = derivatives.transform(results, label, inverse=True)
    if not inv.exists():
        raise InputError("the inverse transform is missing", participant=label, path=inv, fix="run the preprocessing of this participant first")
    if reference is None:
        if bids_root is None:
            raise ValueError("give bids_root or reference")
        reference = ParticipantFiles(Path(bids_root), label).baseline("b1000")
    load_image(prob_mni_path, label, what="MNI-space map", allow_constant=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = apply_transforms(prob_mni_path, reference, [inv], Path(tmp) / "native.nii.gz", interpolation=interpolation)
        img = nib.load(str(out))
        data = np.asarray(img.dataobj, dtype=np.float32)
    ref = nib.load(str(reference))
    native = nib.Nifti1Image(data, ref.affine)
    if out_path is not None:
        save_image(data, ref.affine, out_path)
    return native
