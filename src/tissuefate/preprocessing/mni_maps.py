"""The MNI stage of the preprocessing: masks, parenchymal-mean normalization and stroke side
from the maps warped to MNI (numpy on files; the nipype node DeriveMNIMaps calls it)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.errors import InputError

from tissuefate.io.nifti import save_image

from tissuefate.preprocessing import normalization as norm



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
