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
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.atomic import atomic_path
from tissuefate.io.bids import ParticipantFiles, perfusion_maps_dir, validate_label, write_json
from tissuefate.io.derivatives import SPACE
from tissuefate.io.derivatives import followup_tmax_path  # noqa: F401  (part of this module's API)
from tissuefate.io.nifti import load_image, save_image

from tissuefate.preprocessing.qc import RegistrationQCError, qc_figure, qc_figure_path, qc_verdict
from tissuefate.preprocessing.registration import apply_transforms
from tissuefate.preprocessing.template import template_files

from tissuefate.preprocessing.graph import build_workflow, registration_resolution  # noqa: F401
from tissuefate.preprocessing.inputs import ParticipantInputs, check_inputs  # noqa: F401
from tissuefate.preprocessing.mni_maps import derive_mni_maps  # noqa: F401
from tissuefate.preprocessing.settings import PreprocessingSettings  # noqa: F401


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
    # Absolute: nipype runs each node in a folder of its own, where a path relative to the
    # caller's working directory (`tissuefate predict --bundle results/bundle`) does not exist.
    template_dir = Path(template_dir or results / "preprocessing" / "template").resolve()
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
        "perfusion_source": inputs.perfusion_source if inputs.perfusion else None,
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
) -> dict:
    """The per-participant job a rule calls: raw BIDS participant -> MNI-space derivatives
    (maps, masks, final infarct, transforms, QC figure, summary JSON). ``config`` is the
    whole workflow config (``preprocessing`` and ``cohort.tmax_threshold_s`` are read)."""
    settings = config if isinstance(config, PreprocessingSettings) else PreprocessingSettings.from_config(config)
    # perfusion.maps_source: computed -> the maps computed from raw DSC (docs/perfusion.md).
    maps_dir = perfusion_maps_dir(config) if isinstance(config, dict) else None
    inputs = ParticipantInputs.from_bids(bids_root, label, maps_dir)
    return preprocess_inputs(inputs, results, settings, template_dir=template_dir)


def _inverse_transform(results: str | Path, label: str) -> Path:
    """The participant's saved MNI -> native transform (preprocessing writes it)."""
    inv = derivatives.transform(results, label, inverse=True)
    if not inv.exists():
        raise InputError("the inverse transform is missing", participant=label, path=inv, fix="run the preprocessing of this participant first")
    return inv


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
    label = validate_label(label)
    inv = _inverse_transform(results, label)
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


def to_native_many(
    volumes: np.ndarray,
    affine: np.ndarray,
    label: str,
    results: str | Path,
    reference: str | Path,
    *,
    interpolation: str = "linear",
    within: tuple[slice, slice, slice] | None = None,
) -> np.ndarray:
    """:func:`to_native` of several MNI-space volumes of one grid at once: ``volumes``
    (N, X, Y, Z) on ``affine`` -> (N, x, y, z) float32 on the grid of ``reference``. One ANTs
    call for all of them (the inverse transform is read once); each volume comes out the same,
    bit for bit, as :func:`to_native` of it saved as float32 NIfTI (checked in the tests).

    ``within``: resample only this box of the reference grid (voxel slices, see
    :func:`support_box`) and leave 0 outside it: ANTs' cost is per voxel resampled. The box's
    origin goes through the NIfTI header in float32, so values inside it may differ from the
    whole grid's in the last float bits (not bit for bit)."""
    label = validate_label(label)
    inv = _inverse_transform(results, label)
    volumes = np.asarray(volumes, dtype=np.float32)
    if volumes.ndim != 4 or len(volumes) == 0:
        raise ValueError(f"expected (N, X, Y, Z) volumes, got shape {volumes.shape}")
    series = len(volumes) > 1  # ITK reads a 4D image with one volume as 3D
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "mni.nii"  # uncompressed: written and read once
        save_image(np.moveaxis(volumes, 0, -1) if series else volumes[0], affine, stack)
        target = reference
        if within is not None:
            # The reference's header, its origin moved to the box's corner (its voxels are not read).
            ref_img = nib.load(str(reference))
            shape = [s.stop - s.start for s in within]
            target = Path(tmp) / "reference_box.nii"
            nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), ref_img.slicer.slice_affine(within), ref_img.header),
                     str(target))
        out = apply_transforms(stack, target, [inv], Path(tmp) / "native.nii", interpolation=interpolation,
                               time_series=series)
        data = np.asarray(nib.load(str(out)).dataobj, dtype=np.float32)
    data = np.ascontiguousarray(np.moveaxis(data, -1, 0)) if series else data[None]
    if within is None:
        return data
    full = np.zeros((len(volumes), *ref_img.shape[:3]), np.float32)
    full[(slice(None), *within)] = data
    return full


def support_box(mask: np.ndarray, margin_vox: Sequence[int]) -> tuple[slice, slice, slice] | None:
    """The bounding box of ``mask``'s voxels widened by ``margin_vox`` per axis, clipped to the
    grid (None for an empty mask): where a map that is 0 outside ``mask`` can be non-zero once
    linearly resampled, given a margin of at least one source voxel in this grid's voxels."""
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return None
    lo = np.maximum(idx.min(0) - np.asarray(margin_vox), 0)
    hi = np.minimum(idx.max(0) + 1 + np.asarray(margin_vox), mask.shape[:3])
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
