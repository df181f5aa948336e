"""Write the simulated cohort as a BIDS dataset (layout: tissuefate.io.bids, docs/data.md).

``write_plan`` writes participants.tsv/.json, dataset_description.json and the plan (the
simulator's intentions, derivatives/simulation/plan.tsv); ``simulate_participant`` writes
one patient's images, sidecars, lesion mask and truth. Both are deterministic for a seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from tissuefate import __version__
from tissuefate.io.atomic import atomic_dir, atomic_path, atomic_write_text
from tissuefate.io.bids import ParticipantFiles, raw_dsc_series, validate_label
from tissuefate.io.derivatives import SPACE
from tissuefate.simulation.anatomy import load_anatomy, read_anatomy, save_anatomy
from tissuefate.simulation.clinical import OTHER_FOLLOWUP, PARTICIPANT_COLUMNS, PARTICIPANTS_JSON, make_plan
from tissuefate.simulation.lesion import (LesionParams, followup_severity, perfusion_maps, simulate_lesion,
                                          traced_outline)
from tissuefate.simulation.protocol import (
    SITES_BY_NAME,
    bias_field,
    grid_affine,
    random_pose,
    rician,
    sample_to_grid,
    session_motion,
)

PLAN = Path("derivatives") / "simulation" / "plan.tsv"
# The MNI anatomy on the simulation grid, computed once with the plan (anatomy.read_anatomy).
ANATOMY = Path("derivatives") / "simulation" / "anatomy.npz"
B_VALUE = 1000.0  # s/mm^2


def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="n/a", lineterminator="\n")


def write_plan(config: dict, bids_root: str | Path) -> pd.DataFrame:
    """Write the dataset-level files of the simulated BIDS dataset and return the plan."""
    bids_root = Path(bids_root)
    plan = make_plan(config["simulation"], int(config["seed"]))
    description = {
        "Name": "tissuefate simulated multi-site acute stroke cohort",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["tissuefate simulator"],
        "GeneratedBy": [{"Name": "tissuefate simulate", "Version": __version__}],
        "HowToAcknowledge": "Simulated data; see docs/simulation.md of tissuefate.",
    }
    atomic_write_text(bids_root / "dataset_description.json", json.dumps(description, indent=2) + "\n")
    for name, desc in (("lesions", "Final-infarct masks on the follow-up FLAIR grid"),
                       ("simulation", "Simulator truth (tests and QC only)")):
        deriv = {
            "Name": desc,
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "tissuefate simulate", "Version": __version__}],
        }
        atomic_write_text(bids_root / "derivatives" / name / "dataset_description.json", json.dumps(deriv, indent=2) + "\n")
    atomic_write_text(bids_root / "participants.json", json.dumps(PARTICIPANTS_JSON, indent=2) + "\n")
    _write_tsv(plan[list(PARTICIPANT_COLUMNS)], bids_root / "participants.tsv")
    _write_tsv(plan, bids_root / PLAN)
    save_anatomy(load_anatomy(int(config["simulation"]["mni_resolution_mm"])), bids_root / ANATOMY)
    return plan


def fortran_order(data, dtype) -> np.ndarray:
    """``data`` as ``dtype`` in Fortran order, NIfTI's on-disk order, so that nibabel writes
    contiguous slices instead of gathering strided ones (the same bytes, faster).

    A C-ordered 4D series (frames last) is transposed in two cache-friendly steps: frames to
    the front within each x plane, then each frame's (y, z) planes; numpy's one-step
    transpose reads it with a stride of a whole frame row per element.
    """
    a = np.asarray(data, dtype=dtype)
    if a.ndim != 4 or not a.flags.c_contiguous:
        return np.asfortranarray(a)
    nx, ny, nz, nt = a.shape
    by_x = np.ascontiguousarray(a.reshape(nx, ny * nz, nt).transpose(0, 2, 1)).reshape(nx, nt, ny, nz)
    out = np.empty((nt, nz, ny, nx), dtype=a.dtype)
    for t in range(nt):
        out[t] = by_x[:, t].T
    return out.T


def _nifti(data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> nib.Nifti1Image:
    img = nib.Nifti1Image(fortran_order(data, dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _write(path: Path, data, affine, sidecar: dict | None = None, dtype=np.float32, tr_s: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = _nifti(data, affine, dtype)
    if tr_s is not None:  # a time series: the fourth voxel dimension is the frame interval
        img.header.set_zooms(img.header.get_zooms()[:3] + (float(tr_s),))
    nib.save(img, str(path))
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")


def _text(value) -> str:
    return "n/a" if isinstance(value, float) and np.isnan(value) else str(value)


@dataclass
class _Context:
    """What every writing step of one participant needs."""

    row: pd.Series
    sim: dict
    anat: object
    maps: object
    pose: object
    site: object
    rng: np.random.Generator
    files: ParticipantFiles
    common: dict
    tmp: object  # ParticipantFiles path -> path inside the temporary folders
    truth_dir: Path
    traced: np.ndarray | None = None  # the final infarct as the rater traced it (MNI grid)

    @property
    def res(self) -> float:
        return float(self.sim["native_resolution_mm"])

    @property
    def sigma(self) -> float:
        return self.site.noise_fraction * 480.0 * self.site.intensity_scale


def _plan_row(bids_root: Path, label: str) -> tuple[int, pd.Series]:
    plan = pd.read_csv(bids_root / PLAN, sep="\t", keep_default_na=False, na_values=["n/a"])
    rows = plan.index[plan["participant_id"] == f"sub-{label}"]
    if len(rows) != 1:
        raise KeyError(f"sub-{label} is not in the simulation plan {bids_root / PLAN}")
    return int(rows[0]), plan.loc[int(rows[0])]


def lesion_params(row: pd.Series, sim: dict) -> LesionParams:
    return LesionParams(
        side=str(row["side"]),
        lesion_index=int(row["lesion_index"]),
        mirrored=bool(row["mirrored"]),
        artery=str(row["artery"]),
        collateral=float(row["collateral"]),
        tmax6_target_ml=float(row["tmax6_target_ml"]),
        penumbra_loss=float(row["penumbra_loss"]),
        reperfusion_fraction=float(row["reperfusion_fraction"]),
        reversal_fraction=float(row["reversal_fraction"]),
        early_growth=float(row["early_growth"]),
        adc_drop=float(row.get("adc_drop", 1.0)),  # a plan column only when the lesion ADC varies
        deformation_mm=float(sim.get("lesion_deformation_mm", 2.0)),
    )


def traced_final(anat, maps, seed: int, index: int) -> np.ndarray:
    """The final-infarct label as a rater traces it (``lesion.traced_outline``), on the
    patient's own tracing stream, so the tracing moves no other draw."""
    return traced_outline(anat, maps.final_infarct, np.random.default_rng([seed, 5, index]))


def _write_diffusion(c: _Context) -> float:
    """Baseline b0, b1000 and ADC (always acquired, even when perfusion is missing)."""
    site, res = c.site, c.res
    dwi_aff, dwi_shape = grid_affine(site.orientation, np.multiply(site.dwi_voxel, res), site.fov_mm)
    brain = c.anat.brain.astype(np.float32)
    sampled, coords = sample_to_grid({"b0": c.maps.b0, "adc": c.maps.adc_um2_per_s, "brain": brain},
                                     c.anat, c.pose, np.eye(4), dwi_aff, dwi_shape)
    b0 = sampled["b0"] * site.intensity_scale * bias_field(c.rng, dwi_shape)
    b1000 = b0 * np.exp(-B_VALUE * sampled["adc"] * 1e-6)
    b0_noisy = rician(b0, c.sigma, c.rng)
    b1000_noisy = rician(b1000, c.sigma, c.rng)
    inside = sampled["brain"] > 0.5
    ratio = np.where(inside, np.maximum(b0_noisy, 1e-3) / np.maximum(b1000_noisy, 1e-3), 1.0)
    adc = np.clip(np.log(ratio) / B_VALUE * 1e6, 0, 4000) * inside  # 10^-6 mm^2/s
    adc_factor = 1000.0 if site.adc_unit.startswith("10^-3") else 1.0
    _write(c.tmp(c.files.baseline("b0")), b0_noisy, dwi_aff, {**c.common, "DiffusionBValue": 0.0})
    _write(c.tmp(c.files.baseline("b1000")), b1000_noisy, dwi_aff, {**c.common, "DiffusionBValue": B_VALUE})
    _write(c.tmp(c.files.baseline("adc")), adc / adc_factor, dwi_aff,
           {**c.common, "Units": site.adc_unit, "Description": "Apparent diffusion coefficient from b=0 and b=1000"})
    _write(c.truth_dir / f"{c.files.sub}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz",
           np.moveaxis(coords, 0, -1), dwi_aff)
    return adc_factor


def _perfusion_grid(c: _Context):
    site = c.site
    perf_fov = (site.fov_mm[0], site.fov_mm[1], site.fov_mm[2] * site.perf_coverage)
    return grid_affine(site.orientation, np.multiply(site.perf_voxel, c.res), perf_fov, z_offset_mm=6.0)


def _write_baseline_perfusion(c: _Context) -> None:
    """Vendor-style Tmax, MTT, CBF, CBV maps on a thinner slab, with its own small head motion,
    and the raw DSC series they come from."""
    perf_aff, perf_shape = _perfusion_grid(c)
    motion = session_motion(c.rng, 2.0, 2.0)
    perf, coords = sample_to_grid({"Tmax": c.maps.tmax_s, "MTT": c.maps.mtt_s, "CBF": c.maps.cbf,
                                   "CBV": c.maps.cbv, "brain": c.anat.brain.astype(np.float32)},
                                  c.anat, c.pose, motion, perf_aff, perf_shape)
    inside_p = perf["brain"] > 0.5
    noise_sd = {"Tmax": 0.25, "MTT": 0.3, "CBF": 2.5, "CBV": 0.15}
    if str(c.row["pwi_quality"]) == "poor":
        noise_sd = {k: v * 12 for k, v in noise_sd.items()}
    units = {"Tmax": "s", "MTT": "s", "CBF": "mL/100g/min", "CBV": "mL/100g"}
    for name in ("Tmax", "MTT", "CBF", "CBV"):
        vol = np.clip(perf[name] + c.rng.normal(0, noise_sd[name], perf_shape), 0, None) * inside_p
        _write(c.tmp(c.files.baseline(name)), vol, perf_aff,
               {**c.common, "Units": units[name], "Description": f"{name} from DSC perfusion (deconvolution)"})
    _write_dsc(c, "baseline", perf, coords, perf_aff)


def _write_followup_perfusion(c: _Context) -> float:
    """The 4-24 h Tmax map (the reperfusion study) and its raw DSC series; returns the MNI rate."""
    target = float(c.row["target_reperfusion_rate"])
    voxel_ml = c.anat.resolution_mm**3 / 1000.0
    s24, achieved = followup_severity(c.maps.severity, target, voxel_ml)
    perf24 = perfusion_maps(c.anat, s24, float(c.row["collateral"]))
    perf_aff, perf_shape = _perfusion_grid(c)
    motion = session_motion(c.rng, 10.0, 10.0)
    fu, coords = sample_to_grid({"Tmax": perf24["tmax"], "MTT": perf24["mtt"], "CBF": perf24["cbf"],
                                 "CBV": perf24["cbv"], "brain": c.anat.brain.astype(np.float32)},
                                c.anat, c.pose, motion, perf_aff, perf_shape)
    vol = np.clip(fu["Tmax"] + c.rng.normal(0, 0.25, perf_shape), 0, None) * (fu["brain"] > 0.5)
    hours = round(float(c.rng.uniform(4, 24)), 1)
    _write(c.tmp(c.files.tmax_followup), vol, perf_aff, {**c.common, "Units": "s", "HoursSinceBaseline": hours})
    _write_dsc(c, "followup", fu, coords, perf_aff)
    return achieved


def _write_dsc(c: _Context, session: str, maps: dict, coords: np.ndarray, affine: np.ndarray) -> None:
    """Raw DSC series of one perfusion study, and its true maps and AIF under derivatives."""
    from tissuefate.simulation.dsc import simulate_dsc

    side = str(c.row["side"])
    series, truth = simulate_dsc(maps, coords, c.site, c.rng, poor=str(c.row["pwi_quality"]) == "poor",
                                 lesion_side=side if side != "bilateral" else "left")
    path = c.tmp(dsc_path(c.files, session))
    signal = np.clip(np.round(series.signal), 0, 32767)
    _write(path, signal, affine, {**c.common, **series.sidecar}, dtype=np.int16,
           tr_s=series.sidecar["RepetitionTime"])
    stem = f"{c.files.sub}_ses-{session}"
    for name, vol in truth.maps.items():
        _write(c.truth_dir / f"{stem}_desc-true{name}_dsc.nii.gz", vol, affine)
    (c.truth_dir / f"{stem}_desc-aif_dsc.json").write_text(json.dumps(truth.aif, indent=2) + "\n")


def dsc_path(files: ParticipantFiles, session: str) -> Path:
    """BIDS path of a raw DSC series: sub-<l>/ses-<s>/perf/sub-<l>_ses-<s>_dsc.nii.gz."""
    return raw_dsc_series(files.root, files.label, session)


def _write_final(c: _Context) -> None:
    """Final lesion imaging: FLAIR at 3-7 days (or 30 days: training only) with its mask."""
    site = c.site
    flair_aff, flair_shape = grid_affine(site.orientation, np.multiply(site.flair_voxel, c.res), site.fov_mm)
    motion = session_motion(c.rng, 10.0, 10.0)
    # The FLAIR shows the infarct; the mask is the rater's tracing of it.
    fl, _ = sample_to_grid({"flair": c.maps.flair, "infarct": c.traced.astype(np.float32)},
                           c.anat, c.pose, motion, flair_aff, flair_shape, coords=False)
    flair = rician(fl["flair"] * 400.0 * site.intensity_scale * bias_field(c.rng, flair_shape), c.sigma * 0.8, c.rng)
    hours = 720.0 if c.row["followup"] == OTHER_FOLLOWUP else round(float(c.rng.uniform(80, 160)), 1)
    _write(c.tmp(c.files.flair_final), flair, flair_aff, {**c.common, "HoursSinceBaseline": hours})
    sub = c.files.sub
    _write(c.tmp(c.files.infarct_mask), fl["infarct"] > 0.5, flair_aff,
           {"Description": "Final infarct, manual-equivalent segmentation on the FLAIR grid",
            "Sources": [f"bids::{sub}/ses-final/anat/{sub}_ses-final_FLAIR.nii.gz"]}, dtype=np.uint8)


def _write_truth(c: _Context, params: LesionParams, adc_factor: float, achieved: float) -> None:
    """Truth in MNI space (never read by the pipeline)."""
    anat, maps, row, sub = c.anat, c.maps, c.row, c.files.sub
    voxel_ml = anat.resolution_mm**3 / 1000.0
    tprefix = f"{sub}_space-{SPACE}"
    _write(c.truth_dir / f"{tprefix}_desc-infarct_mask.nii.gz", maps.final_infarct, anat.affine, dtype=np.uint8)
    if c.traced is not None:
        _write(c.truth_dir / f"{tprefix}_desc-tracedinfarct_mask.nii.gz", c.traced, anat.affine, dtype=np.uint8)
    _write(c.truth_dir / f"{tprefix}_desc-core_mask.nii.gz", maps.core, anat.affine, dtype=np.uint8)
    _write(c.truth_dir / f"{tprefix}_desc-territory_mask.nii.gz", maps.territory, anat.affine, dtype=np.uint8)
    _write(c.truth_dir / f"{tprefix}_desc-brain_mask.nii.gz", anat.brain, anat.affine, dtype=np.uint8)
    _write(c.truth_dir / f"{tprefix}_desc-severity_map.nii.gz", maps.severity, anat.affine)
    _write(c.truth_dir / f"{tprefix}_Tmax.nii.gz", maps.tmax_s, anat.affine)
    _write(c.truth_dir / f"{tprefix}_ADC.nii.gz", maps.adc_um2_per_s, anat.affine)
    if bool(row["has_final"]):
        _write(c.truth_dir / f"{tprefix}_FLAIR.nii.gz", maps.flair, anat.affine)  # before bias field and noise
    truth = {
        "participant_id": sub,
        "site": c.site.name,
        "adc_unit": c.site.adc_unit,
        "adc_factor_to_um2_per_s": adc_factor,
        "side": params.side,
        "artery": params.artery,
        "lesion_index": params.lesion_index,
        "lesion_source": _text(row["lesion_source"]),
        "lesion_mirrored": params.mirrored,
        "collateral": params.collateral,
        "reperfusion_fraction": params.reperfusion_fraction,
        "target_reperfusion_rate": float(row["target_reperfusion_rate"]),
        "achieved_reperfusion_rate_mni": achieved,
        "simulated_group": _text(row["simulated_group"]),
        "simulated_exclusion": _text(row["simulated_exclusion"]),
        "pose_scanner_to_mni": c.pose.matrix.tolist(),
        "mni_resolution_mm": anat.resolution_mm,
        "final_infarct_ml_mni": float(maps.final_infarct.sum() * voxel_ml),
        "core_ml_mni": float(maps.core.sum() * voxel_ml),
        "tmax6_ml_mni": float((maps.tmax_s > 6.0).sum() * voxel_ml),
    }
    (c.truth_dir / f"{sub}_desc-truth.json").write_text(json.dumps(truth, indent=2, default=float) + "\n")


def simulate_participant(config: dict, bids_root: str | Path, participant: str) -> None:
    """Simulate and write one participant (raw images, lesion mask, truth)."""
    bids_root = Path(bids_root)
    label = validate_label(participant)
    sim = config["simulation"]
    index, row = _plan_row(bids_root, label)
    rng = np.random.default_rng([int(config["seed"]), 2, index])
    anat = read_anatomy(bids_root / ANATOMY, int(sim["mni_resolution_mm"]))
    params = lesion_params(row, sim)
    maps = simulate_lesion(anat, params, rng)
    pose = random_pose(anat, rng, sim["max_rotation_deg"], sim["max_shift_mm"], sim["deformation_mm"])
    site = SITES_BY_NAME[str(row["site"])]
    files = ParticipantFiles(Path("."), label)
    common = {"InstitutionName": site.institution, "Manufacturer": site.manufacturer,
              "MagneticFieldStrength": site.field_strength_t}
    with atomic_dir(bids_root / files.sub) as raw_dir, \
            atomic_dir(bids_root / "derivatives" / "lesions" / files.sub) as les_dir, \
            atomic_dir(bids_root / "derivatives" / "simulation" / files.sub) as truth_dir:
        def tmp(path: Path) -> Path:
            # ParticipantFiles paths are relative to the dataset root; write them in the temp folders
            # that replace sub-<label>/ and derivatives/lesions/sub-<label>/ once all is written.
            parts = path.parts
            return les_dir.joinpath(*parts[3:]) if parts[0] == "derivatives" else raw_dir.joinpath(*parts[1:])

        traced = traced_final(anat, maps, int(config["seed"]), index) if bool(row["has_final"]) else None
        c = _Context(row, sim, anat, maps, pose, site, rng, files, common, tmp, truth_dir, traced)
        adc_factor = _write_diffusion(c)
        if bool(row["has_baseline_perfusion"]):
            _write_baseline_perfusion(c)
        achieved = _write_followup_perfusion(c) if bool(row["has_followup_perfusion"]) else float("nan")
        if bool(row["has_final"]):
            _write_final(c)
        _write_truth(c, params, adc_factor, achieved)
