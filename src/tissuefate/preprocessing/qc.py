"""Quality control of the registration: measures computed for every participant (no truth
needed), the per-participant QC figure, and the accuracy against the simulator's truth.

Failure detection (every participant, real or simulated): after normalization the DWI must
look like a brain where the template has one, reached by a plausible transform. Four
measures, all must pass (thresholds in the config):
- ``mutual_information``: Mattes mutual information between the template and the warped
  registration image inside the template's brain mask (contrast-agnostic: T1 vs T2/DWI);
- ``brain_dice_template``: Dice between the template's brain mask and the patient's own
  foreground (a threshold of the b1000 image on its native grid), warped to MNI;
- ``brain_volume_ratio``: patient / template brain volume implied by the transform's affine
  part (an image of noise gives factors, not percent);
- ``nonlinear_p95_mm``: what SyN had to add to the affine (a flipped image needs tens of mm).
Calibration (docs/preprocessing.md): an image of noise fails all four; a head flipped
upside down fails the last; the ISLES 2022 case and the phantoms pass all four.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
from nibabel.processing import resample_from_to
import numpy as np

from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.atomic import atomic_path
from tissuefate.io.bids import ParticipantFiles, validate_label
from tissuefate.io.derivatives import SPACE
from tissuefate.measures import dice, voxel_volume_ml
from tissuefate.preprocessing.registration import import_ants, read, write


class RegistrationQCError(InputError):
    """The normalization failed QC and the config asks to stop (on_registration_failure: error)."""


def qc_figure_path(results: str | Path, label: str) -> Path:
    """The per-participant QC figure (flag it with report(..., category=...) in the rule)."""
    return derivatives.participant_dir(results, label) / f"sub-{label}_ses-baseline_space-{SPACE}_desc-qc_figure.png"


# ---------------------------------------------------------------- measures without truth


def native_foreground(image: str | Path, out: str | Path) -> Path:
    """The patient's foreground on its native grid: ANTs' mean threshold with morphological
    clean-up (largest component, holes filled). On b1000 DWI that is close to the brain."""
    ants = import_ants()

    return write(ants.get_mask(read(image), cleanup=2), out)


def warp_measures(forward_transform: str | Path, template_mask: str | Path, stride: int = 2) -> dict:
    """How far the normalization is from a plausible head: template brain points are mapped
    into the patient (the composite maps MNI points to native ones) and an affine is fitted.
    ``brain_volume_ratio``: patient / template brain volume from that affine (adult brains
    differ by tens of percent, not by factors); ``nonlinear_p95_mm``: 95th percentile of
    what the affine leaves to SyN (a flipped or wrong image needs tens of mm)."""
    import pandas as pd

    ants = import_ants()

    mask = read(template_mask)
    ijk = np.argwhere(mask.numpy() > 0)[::stride]
    pts = np.asarray(mask.origin) + (ijk * np.asarray(mask.spacing)) @ np.asarray(mask.direction).T
    native = ants.apply_transforms_to_points(3, pd.DataFrame(pts, columns=["x", "y", "z"]), [str(forward_transform)])
    native = native[["x", "y", "z"]].to_numpy()
    design = np.c_[pts, np.ones(len(pts))]
    coef, *_ = np.linalg.lstsq(design, native, rcond=None)
    resid = np.linalg.norm(native - design @ coef, axis=1)
    return {
        "brain_volume_ratio": round(float(abs(np.linalg.det(coef[:3].T))), 4),
        "nonlinear_p95_mm": round(float(np.percentile(resid, 95)), 3),
    }


def registration_measures(
    template: str | Path, template_mask: str | Path, warped: str | Path, foreground_mni: str | Path, forward_transform: str | Path
) -> dict:
    """QC measures of one normalization (see the module docstring)."""
    ants = import_ants()

    tpl, mask, moved = read(template), read(template_mask), read(warped)
    mi = -float(ants.image_similarity(tpl, moved, "MattesMutualInformation", fixed_mask=mask, moving_mask=None))
    fg = nib.load(str(foreground_mni)).get_fdata() > 0.5
    tmask = nib.load(str(template_mask)).get_fdata() > 0
    return {
        "mutual_information": round(mi, 4),
        "brain_dice_template": round(dice(fg, tmask), 4),
        **warp_measures(forward_transform, template_mask),
    }


def qc_verdict(
    measures: dict,
    *,
    min_mutual_information: float,
    min_brain_dice: float,
    brain_volume_ratio_range: tuple[float, float],
    max_nonlinear_p95_mm: float,
) -> tuple[bool, list[str]]:
    """Pass only if every measure is in range; the reasons say which one is not."""
    reasons = []
    mi, bd = measures["mutual_information"], measures["brain_dice_template"]
    vr, nl = measures["brain_volume_ratio"], measures["nonlinear_p95_mm"]
    if not mi >= min_mutual_information:
        reasons.append(f"mutual information with the template {mi:.3f} < {min_mutual_information:g}")
    if not bd >= min_brain_dice:
        reasons.append(f"Dice of the warped foreground with the template brain mask {bd:.3f} < {min_brain_dice:g}")
    lo, hi = brain_volume_ratio_range
    if not lo <= vr <= hi:
        reasons.append(f"brain volume / template volume {vr:.2f} outside [{lo:g}, {hi:g}]")
    if not nl <= max_nonlinear_p95_mm:
        reasons.append(f"nonlinear displacement p95 {nl:.1f} mm > {max_nonlinear_p95_mm:g} mm")
    return not reasons, reasons


# ---------------------------------------------------------------- figure


def qc_figure(
    out_png: str | Path,
    *,
    title: str,
    template_mask: str | Path,
    maps: dict[str, str | Path],
    masks: dict[str, str | Path],
    passed: bool,
) -> Path:
    """Template brain outline over the warped DWI, and every map side by side, on three
    axial slices through the lesion (or the brain's middle); masks drawn as contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tmask = nib.load(str(template_mask)).get_fdata() > 0
    data = {k: nib.load(str(v)).get_fdata() for k, v in maps.items()}
    mask_data = {k: nib.load(str(v)).get_fdata() > 0 for k, v in masks.items()}
    zs_brain = np.nonzero(tmask.any(axis=(0, 1)))[0]
    lesion_any = np.zeros_like(tmask)
    for m in mask_data.values():
        lesion_any |= m
    if lesion_any.any():
        zc = int(np.median(np.nonzero(lesion_any.any(axis=(0, 1)))[0]))
    else:
        zc = int(zs_brain.mean())
    span = max(2, (zs_brain.max() - zs_brain.min()) // 6)
    slices = [int(np.clip(z, zs_brain.min(), zs_brain.max())) for z in (zc - span, zc, zc + span)]
    cols = list(data) + ["masks"]
    colours = {"final_infarct": "yellow", "tmax6s": "deepskyblue", "adc620": "red"}
    fig, axes = plt.subplots(len(slices), len(cols), figsize=(1.7 * len(cols), 1.9 * len(slices)), squeeze=False)
    for r, z in enumerate(slices):
        for c, name in enumerate(cols):
            ax = axes[r, c]
            ax.axis("off")
            base = data[name] if name in data else data[next(iter(data))]
            sl = np.rot90(base[:, :, z])
            vmax = np.percentile(base[tmask], 99) if tmask.any() else sl.max()
            ax.imshow(sl, cmap="gray", vmin=0, vmax=vmax or 1)
            if c == 0:
                ax.contour(np.rot90(tmask[:, :, z]), [0.5], colors="lime", linewidths=0.6)
            if name == "masks":
                for mname, m in mask_data.items():
                    if m[:, :, z].any():
                        ax.contour(np.rot90(m[:, :, z]), [0.5], colors=colours.get(mname, "orange"), linewidths=0.7)
            if r == 0:
                ax.set_title(name if name != "masks" else "\n".join(f"{k} ({colours.get(k, 'orange')})" for k in mask_data), fontsize=5)
    title = ("" if passed else "QC FAILED  ") + title + "   (template brain outline in green; R on the right)"
    fig.suptitle(title, fontsize=7, color="black" if passed else "red")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return out_png


# ---------------------------------------------------------------- accuracy against truth


def truth_paths(bids_root: str | Path, label: str) -> dict[str, Path]:
    """The simulator's truth contract for one participant."""
    d = ParticipantFiles(Path(bids_root), label).truth_dir()
    sub = f"sub-{label}"
    return {
        "infarct": d / f"{sub}_space-{SPACE}_desc-infarct_mask.nii.gz",
        "brain": d / f"{sub}_space-{SPACE}_desc-brain_mask.nii.gz",
        "flair": d / f"{sub}_space-{SPACE}_FLAIR.nii.gz",  # noise-free; absent without a follow-up FLAIR
        "mnicoords": d / f"{sub}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz",
        "json": d / f"{sub}_desc-truth.json",
    }


def _resample_mni(src: nib.Nifti1Image, ref: nib.Nifti1Image, order: int = 1) -> np.ndarray:
    """Resample between two grids of the same (MNI) world space (nibabel, linear by default)."""
    return np.asarray(resample_from_to(src, ref, order=order, mode="constant", cval=0.0).dataobj)


def registration_accuracy(label: str, results: str | Path, bids_root: str | Path) -> dict:
    """Compare the recovered baseline-DWI -> MNI transform with the simulator's truth.

    - ``brain_dice``: the true brain, carried to the native b1000 grid by the true
      coordinates, warped back to MNI by our transform, vs the true MNI brain mask;
    - ``lesion_dice``: our final-infarct mask in MNI (FLAIR lesion -> DWI -> MNI) vs the
      true MNI lesion, on the truth's grid;
    - ``median_displacement_mm`` (and p95, max): at every true-brain voxel y of the truth's
      MNI grid covered by the DWI, |true MNI position of the native point our transform
      maps to y - y|.
    Raises FileNotFoundError when the truth is absent (real data).
    """
    ants = import_ants()

    label = validate_label(label)
    tp = truth_paths(bids_root, label)
    for key in ("brain", "mnicoords"):
        if not tp[key].exists():
            raise FileNotFoundError(tp[key])
    fwd = derivatives.transform(results, label)
    b1000 = ParticipantFiles(Path(bids_root), label).baseline("b1000")
    brain_img = nib.load(str(tp["brain"]))
    true_brain = np.asarray(brain_img.dataobj) > 0
    coords_img = nib.load(str(tp["mnicoords"]))
    coords = np.asarray(coords_img.dataobj, dtype=np.float32).reshape(coords_img.shape[:3] + (3,))

    # True brain on the native grid: look each native voxel's true MNI position up.
    ijk = np.rint((coords.reshape(-1, 3) - brain_img.affine[:3, 3]) @ np.linalg.inv(brain_img.affine[:3, :3]).T).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(brain_img.shape[:3])), axis=1)
    native_brain = np.zeros(ijk.shape[0], bool)
    native_brain[inside] = true_brain[tuple(ijk[inside].T)]
    native_brain = native_brain.reshape(coords.shape[:3])

    ref = read(tp["brain"])
    native_ref = read(b1000)

    def to_truth_grid(arr: np.ndarray, interp: str = "linear") -> np.ndarray:
        img = native_ref.new_image_like(arr.astype(np.float32))
        return ants.apply_transforms(ref, img, [str(fwd)], interpolator=interp, defaultvalue=0).numpy()

    # ants arrays are in the same index order as nibabel's for the same file.
    warped_brain = to_truth_grid(native_brain.astype(np.float32)) >= 0.5
    out = {"participant_id": f"sub-{label}", "brain_dice": round(dice(warped_brain, true_brain), 4)}

    fov = to_truth_grid(np.ones(coords.shape[:3], np.float32)) > 0.999
    sel = true_brain & fov
    grid = np.argwhere(sel)
    y = grid @ brain_img.affine[:3, :3].T + brain_img.affine[:3, 3]
    est = np.stack([to_truth_grid(coords[..., k])[sel] for k in range(3)], axis=1)
    disp = np.linalg.norm(est - y, axis=1)
    out.update(
        median_displacement_mm=round(float(np.median(disp)), 3),
        p95_displacement_mm=round(float(np.percentile(disp, 95)), 3),
        max_displacement_mm=round(float(disp.max()), 3),
    )

    ours = derivatives.final_infarct_mask(results, label)
    if tp["infarct"].exists() and ours.exists():
        true_les_img = nib.load(str(tp["infarct"]))
        true_les = np.asarray(true_les_img.dataobj) > 0
        our_les = _resample_mni(nib.load(str(ours)), true_les_img) >= 0.5
        vml = voxel_volume_ml(true_les_img)
        out.update(
            lesion_dice=round(dice(our_les, true_les), 4),
            true_lesion_ml=round(float(true_les.sum() * vml), 2),
            lesion_ml=round(float(our_les.sum() * vml), 2),
        )
    else:
        out.update(lesion_dice=float("nan"), true_lesion_ml=float("nan"), lesion_ml=float("nan"))
    return out


def summarize_accuracy(rows: list[dict]) -> dict:
    """Medians over participants with truth (the issue's acceptance figures)."""

    def med(key):
        vals = [r[key] for r in rows if key in r and not (isinstance(r[key], float) and math.isnan(r[key]))]
        return float(np.median(vals)) if vals else float("nan")

    return {k: med(k) for k in ("brain_dice", "lesion_dice", "median_displacement_mm")}
