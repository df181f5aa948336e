"""The MNI template nilearn ships (ICBM 2009a nonlinear symmetric), written once per
resolution so each participant's job reads three small files instead of resampling the
1 mm template again (about 5 s)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.io.atomic import atomic_path
from tissuefate.io.derivatives import SPACE


@dataclass(frozen=True)
class TemplateFiles:
    """T1w image, brain mask and tissue (GM + WM) probability on one template grid."""

    t1w: Path
    brain_mask: Path
    tissue_probseg: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.t1w, self.brain_mask, self.tissue_probseg)


def _res_label(resolution_mm: float) -> str:
    return f"{resolution_mm:g}".replace(".", "p")


def template_paths(resolution_mm: float, template_dir: str | Path) -> TemplateFiles:
    d = Path(template_dir)
    stem = f"tpl-{SPACE}_res-{_res_label(resolution_mm)}mm"
    return TemplateFiles(
        t1w=d / f"{stem}_T1w.nii.gz",
        brain_mask=d / f"{stem}_desc-brain_mask.nii.gz",
        tissue_probseg=d / f"{stem}_label-GMWM_probseg.nii.gz",
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
    images = (
        (paths.t1w, t1.get_fdata(dtype=np.float32), np.float32),
        (paths.brain_mask, (mask.get_fdata() > 0).astype(np.uint8), np.uint8),
        (paths.tissue_probseg, np.clip(gm + wm, 0, 1), np.float32),
    )
    for path, data, dtype in images:
        img = nib.Nifti1Image(data.astype(dtype), affine)
        img.set_qform(affine, code=4)  # 4 = MNI152 aligned
        img.set_sform(affine, code=4)
        img.header.set_xyzt_units("mm")
        with atomic_path(path) as tmp:
            nib.save(img, str(tmp))
    return paths
