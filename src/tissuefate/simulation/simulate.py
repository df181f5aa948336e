"""Write the simulated cohort as a BIDS dataset (layout: tissuefate.io.bids, docs/data.md).

``write_plan`` writes participants.tsv/.json, dataset_description.json and the plan (the
simulator's intentions, derivatives/simulation/plan.tsv); ``simulate_participant`` writes
one patient's images, sidecars, lesion mask and truth. Both are deterministic for a seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from tissuefate import __version__
from tissuefate.io.atomic import atomic_dir, atomic_path, atomic_write_text
from tissuefate.io.bids import ParticipantFiles, validate_label
from tissuefate.io.derivatives import SPACE
from tissuefate.simulation.anatomy import load_anatomy
from tissuefate.simulation.clinical import PARTICIPANT_COLUMNS, PARTICIPANTS_JSON, make_plan
from tissuefate.simulation.lesion import LesionParams, followup_severity, simulate_lesion, tmax_from_severity
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
B_VALUE = 1000.0  # s/mm^2


def participant_labels(sim_cfg: dict) -> list[str]:
    """Labels of the simulated participants, known from the config alone (no I/O)."""
    n = int(sim_cfg["n_included"]) + sum(int(v) for v in sim_cfg["n_excluded"].values())
    width = max(3, len(str(n)))
    return [f"{i + 1:0{width}d}" for i in range(n)]


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
    return plan


def _nifti(data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _write(path: Path, data, affine, sidecar: dict | None = None, dtype=np.float32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(_nifti(data, affine, dtype), str(path))
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")


def _text(value) -> str:
    return "n/a" if isinstance(value, float) and np.isnan(value) else str(value)


def simulate_participant(config: dict, bids_root: str | Path, participant: str) -> None:
    """Simulate and write one participant (raw images, lesion mask, truth)."""
    bids_root = Path(bids_root)
    label = validate_label(participant)
    sim = config["simulation"]
    plan = pd.read_csv(bids_root / PLAN, sep="\t", keep_default_na=False, na_values=["n/a"])
    rows = plan.index[plan["participant_id"] == f"sub-{label}"]
    if len(rows) != 1:
        raise KeyError(f"sub-{label} is not in the simulation plan {bids_root / PLAN}")
    index = int(rows[0])
    row = plan.loc[index]
    seed = int(config["seed"])
    rng = np.random.default_rng([seed, 2, index])

    anat = load_anatomy(int(sim["mni_resolution_mm"]))
    voxel_ml = anat.resolution_mm**3 / 1000.0
    params = LesionParams(
        side=str(row["side"]),
        territory=str(row["territory"]),
        collateral=float(row["collateral"]),
        onset_to_imaging_h=float(row["onset_to_imaging_h"]),
        severity_scale=float(row["severity_scale"]),
        reperfusion_fraction=float(row["reperfusion_fraction"]),
        centre_jitter_mm=tuple(rng.uniform(-5, 5, 3)),
        radius_scale=float(row["radius_scale"]),
        guaranteed_infarct_ml=2.0 if row["simulated_exclusion"] == "complete_reperfusion_at_baseline" else 0.0,
    )
    maps = simulate_lesion(anat, params, rng)
    pose = random_pose(anat, rng, sim["max_rotation_deg"], sim["max_shift_mm"], sim["deformation_mm"])
    site = SITES_BY_NAME[str(row["site"])]
    res = float(sim["native_resolution_mm"])
    scale = site.intensity_scale
    sigma = site.noise_fraction * 480.0 * scale
    files = ParticipantFiles(Path("."), label)
    sub = files.sub
    common = {
        "InstitutionName": site.institution,
        "Manufacturer": site.manufacturer,
        "MagneticFieldStrength": site.field_strength_t,
    }
    brain = anat.brain.astype(np.float32)

    with atomic_dir(bids_root / sub) as raw_dir, atomic_dir(bids_root / "derivatives" / "lesions" / sub) as les_dir, \
            atomic_dir(bids_root / "derivatives" / "simulation" / sub) as truth_dir:
        def tmp(path: Path) -> Path:
            # ParticipantFiles paths are relative to the dataset root; write them in the temp folders
            # that replace sub-<label>/ and derivatives/lesions/sub-<label>/ once all is written.
            parts = path.parts
            if parts[0] == "derivatives":
                return les_dir.joinpath(*parts[3:])
            return raw_dir.joinpath(*parts[1:])

        # Baseline diffusion (always acquired, even when perfusion is missing).
        dwi_aff, dwi_shape = grid_affine(site.orientation, np.multiply(site.dwi_voxel, res), site.fov_mm)
        sampled, coords = sample_to_grid(
            {"b0": maps.b0, "adc": maps.adc_um2_per_s, "brain": brain}, anat, pose, np.eye(4), dwi_aff, dwi_shape)
        field = bias_field(rng, dwi_shape)
        b0 = sampled["b0"] * scale * field
        b1000 = b0 * np.exp(-B_VALUE * sampled["adc"] * 1e-6)
        b0_noisy = rician(b0, sigma, rng)
        b1000_noisy = rician(b1000, sigma, rng)
        inside = sampled["brain"] > 0.5
        ratio = np.where(inside, np.maximum(b0_noisy, 1e-3) / np.maximum(b1000_noisy, 1e-3), 1.0)
        adc = np.clip(np.log(ratio) / B_VALUE * 1e6, 0, 4000) * inside  # 10^-6 mm^2/s
        adc_factor = 1000.0 if site.adc_unit.startswith("10^-3") else 1.0
        _write(tmp(files.baseline("b0")), b0_noisy, dwi_aff, {**common, "DiffusionBValue": 0.0})
        _write(tmp(files.baseline("b1000")), b1000_noisy, dwi_aff, {**common, "DiffusionBValue": B_VALUE})
        _write(tmp(files.baseline("adc")), adc / adc_factor, dwi_aff,
                {**common, "Units": site.adc_unit, "Description": "Apparent diffusion coefficient from b=0 and b=1000"})
        _write(truth_dir / f"{sub}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz",
                np.moveaxis(coords, 0, -1), dwi_aff)

        # Baseline perfusion: a thinner slab, its own small head motion.
        perf_fov = (site.fov_mm[0], site.fov_mm[1], site.fov_mm[2] * site.perf_coverage)
        perf_aff, perf_shape = grid_affine(site.orientation, np.multiply(site.perf_voxel, res), perf_fov, z_offset_mm=6.0)
        if bool(row["has_baseline_perfusion"]):
            motion = session_motion(rng, 2.0, 2.0)
            perf, _ = sample_to_grid({"Tmax": maps.tmax_s, "MTT": maps.mtt_s, "CBF": maps.cbf, "CBV": maps.cbv,
                                      "brain": brain}, anat, pose, motion, perf_aff, perf_shape)
            inside_p = perf["brain"] > 0.5
            noise_sd = {"Tmax": 0.25, "MTT": 0.3, "CBF": 2.5, "CBV": 0.15}
            if str(row["pwi_quality"]) == "poor":
                noise_sd = {k: v * 12 for k, v in noise_sd.items()}
            units = {"Tmax": "s", "MTT": "s", "CBF": "mL/100g/min", "CBV": "mL/100g"}
            for name in ("Tmax", "MTT", "CBF", "CBV"):
                vol = np.clip(perf[name] + rng.normal(0, noise_sd[name], perf_shape), 0, None) * inside_p
                _write(tmp(files.baseline(name)), vol, perf_aff,
                        {**common, "Units": units[name], "Description": f"{name} from DSC perfusion (deconvolution)"})

        # 4-24 h perfusion: the reperfusion study.
        if bool(row["has_followup_perfusion"]):
            target = float(row["target_reperfusion_rate"])
            s24, achieved = followup_severity(maps.severity, target, voxel_ml)
            tmax24 = tmax_from_severity(s24) * anat.brain
            motion = session_motion(rng, 10.0, 10.0)
            fu, _ = sample_to_grid({"Tmax": tmax24, "brain": brain}, anat, pose, motion, perf_aff, perf_shape)
            vol = np.clip(fu["Tmax"] + rng.normal(0, 0.25, perf_shape), 0, None) * (fu["brain"] > 0.5)
            hours = round(float(rng.uniform(4, 24)), 1)
            _write(tmp(files.tmax_followup), vol, perf_aff,
                    {**common, "Units": "s", "HoursSinceBaseline": hours})
        else:
            achieved = float("nan")

        # Final lesion imaging: FLAIR at 3-7 days (or 30 days: training only) with its mask.
        if bool(row["has_final"]):
            flair_aff, flair_shape = grid_affine(site.orientation, np.multiply(site.flair_voxel, res), site.fov_mm)
            motion = session_motion(rng, 10.0, 10.0)
            fl, _ = sample_to_grid({"flair": maps.flair, "infarct": maps.final_infarct.astype(np.float32)},
                                   anat, pose, motion, flair_aff, flair_shape)
            flair = rician(fl["flair"] * 400.0 * scale * bias_field(rng, flair_shape), sigma * 0.8, rng)
            hours = 720.0 if row["followup"] == "flair_30d" else round(float(rng.uniform(80, 160)), 1)
            _write(tmp(files.flair_final), flair, flair_aff, {**common, "HoursSinceBaseline": hours})
            _write(tmp(files.infarct_mask), fl["infarct"] > 0.5, flair_aff,
                    {"Description": "Final infarct, manual-equivalent segmentation on the FLAIR grid",
                     "Sources": [f"bids::{sub}/ses-final/anat/{sub}_ses-final_FLAIR.nii.gz"]}, dtype=np.uint8)

        # Truth in MNI space (never read by the pipeline).
        tprefix = f"{sub}_space-{SPACE}"
        _write(truth_dir / f"{tprefix}_desc-infarct_mask.nii.gz", maps.final_infarct, anat.affine, dtype=np.uint8)
        _write(truth_dir / f"{tprefix}_desc-core_mask.nii.gz", maps.core, anat.affine, dtype=np.uint8)
        _write(truth_dir / f"{tprefix}_desc-brain_mask.nii.gz", anat.brain, anat.affine, dtype=np.uint8)
        _write(truth_dir / f"{tprefix}_desc-severity_map.nii.gz", maps.severity, anat.affine)
        _write(truth_dir / f"{tprefix}_Tmax.nii.gz", maps.tmax_s, anat.affine)
        _write(truth_dir / f"{tprefix}_ADC.nii.gz", maps.adc_um2_per_s, anat.affine)
        if bool(row["has_final"]):
            _write(truth_dir / f"{tprefix}_FLAIR.nii.gz", maps.flair, anat.affine)  # before bias field and noise
        truth = {
            "participant_id": sub,
            "site": site.name,
            "adc_unit": site.adc_unit,
            "adc_factor_to_um2_per_s": adc_factor,
            "side": params.side,
            "territory": params.territory,
            "collateral": params.collateral,
            "reperfusion_fraction": params.reperfusion_fraction,
            "target_reperfusion_rate": float(row["target_reperfusion_rate"]),
            "achieved_reperfusion_rate_mni": achieved,
            "simulated_group": _text(row["simulated_group"]),
            "simulated_exclusion": _text(row["simulated_exclusion"]),
            "pose_scanner_to_mni": pose.matrix.tolist(),
            "mni_resolution_mm": anat.resolution_mm,
            "final_infarct_ml_mni": float(maps.final_infarct.sum() * voxel_ml),
            "core_ml_mni": float(maps.core.sum() * voxel_ml),
            "tmax6_ml_mni": float((maps.tmax_s > 6.0).sum() * voxel_ml),
        }
        (truth_dir / f"{sub}_desc-truth.json").write_text(json.dumps(truth, indent=2, default=float) + "\n")
