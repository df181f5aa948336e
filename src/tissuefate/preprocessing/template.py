"""The MNI template nilearn ships (ICBM 2009a nonlinear symmetric), written once per
resolution so each participant's job reads a few small files instead of resampling the
1 mm template again (about 5 s).

Besides the T1-weighted template, two synthetic templates in the contrast of the images we
register (ours): mutual information tolerates a contrast mismatch, but not without bias: a
b0 normalized to the T1 template came out 2-6 % too large in volume, 1.5 mm median
displacement on the demo cohort; to a T2-like template, within 2 %, 1.0 mm. They are the
template's grey-matter, white-matter and CSF (brain - GM - WM) fractions mixed with
textbook relative signals: b0 (T2-weighted, TE about 90 ms) CSF 2.5 : GM 1.3 : WM 1.0;
b1000 = b0 x exp(-1000 ADC) with ADC 3.0 / 0.82 / 0.72 um^2/ms, i.e. CSF 0.25 : GM 1.15 :
WM 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.io.atomic import atomic_path
from tissuefate.io.derivatives import SPACE


@dataclass(frozen=True)
class TemplateFiles:
    """T1w image, synthetic b0-like and b1000-like images, brain mask and tissue (GM + WM)
    probability on one template grid."""

    t1w: Path
    brain_mask: Path
    tissue_probseg: Path
    b0_like: Path
    b1000_like: Path

    def all(self) -> tuple[Path, ...]:
        return (self.t1w, self.brain_mask, self.tissue_probseg, self.b0_like, self.b1000_like)

    def registration_target(self, image: str, contrast: str = "synthetic") -> Path:
        """The template to register a ``b0`` or ``b1000`` image to (``contrast``: synthetic or t1)."""
        if contrast == "t1":
            return self.t1w
        return {"b0": self.b0_like, "b1000": self.b1000_like}[image]


def _res_label(resolution_mm: float) -> str:
    return f"{resolution_mm:g}".replace(".", "p")


def template_paths(resolution_mm: float, template_dir: str | Path) -> TemplateFiles:
    d = Path(template_dir)
    stem = f"tpl-{SPACE}_res-{_res_label(resolution_mm)}mm"
    return TemplateFiles(
        t1w=d / f"{stem}_T1w.nii.gz",
        brain_mask=d / f"{stem}_desc-brain_mask.nii.gz",
        tissue_probseg=d / f"{stem}_label-GMWM_probseg.nii.gz",
        b0_like=d / f"{stem}_desc-synthetic_acq-b0_dwi.nii.gz",
        b1000_like=d / f"{stem}_desc-synthetic_acq-b1000_dwi.nii.gz",
    )


def template_files(resolution_mm: float, template_dir: str | Path) -> TemplateFiles:
    """The template files at ``resolution_mm``; written (atomically) if missing."""
    paths = template_paths(resolution_mm, template_dir)
    if all(p.exists() for p in paths.all()):
        return paths
    from nilearn import datasets

    if float(resolution_mm) != int(resolution_mm) or int(resolution_mm) < 1:
        raise ValueError(f"template resolution must be a whole number of mm (nilearn resamples to integers), got {resolution_mm}")
    res = int(resolution_mm)
    t1 = datasets.load_mni152_template(resolution=res)
    mask = datasets.load_mni152_brain_mask(resolution=res)
    gm = datasets.load_mni152_gm_template(resolution=res).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=res).get_fdata(dtype=np.float32)
    affine = t1.affine
    brain = (mask.get_fdata() > 0).astype(np.float32)
    csf = np.clip(brain - gm - wm, 0, 1)
    images = (
        (paths.t1w, t1.get_fdata(dtype=np.float32), np.float32),
        (paths.brain_mask, brain.astype(np.uint8), np.uint8),
        (paths.tissue_probseg, np.clip(gm + wm, 0, 1), np.float32),
        (paths.b0_like, (2.5 * csf + 1.3 * gm + 1.0 * wm) * brain, np.float32),
        (paths.b1000_like, (0.25 * csf + 1.15 * gm + 1.0 * wm) * brain, np.float32),
    )
    for path, data, dtype in images:
        img = nib.Nifti1Image(data.astype(dtype), affine)
        img.set_qform(affine, code=4)  # 4 = MNI152 aligned
        img.set_sform(affine, code=4)
        img.header.set_xyzt_units("mm")
        with atomic_path(path) as tmp:
            nib.save(img, str(tmp))
    return paths
