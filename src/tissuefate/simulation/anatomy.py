"""Anatomy of the simulated patients: the MNI152 2009a symmetric template that nilearn ships.

Nothing is downloaded: nilearn carries the 1 mm template, grey- and white-matter maps
and brain mask in its package data and resamples them to the requested resolution.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from tissuefate.io.atomic import atomic_path


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps on one MNI grid (RAS, voxel size ``resolution_mm``)."""

    affine: np.ndarray
    t1: np.ndarray
    gm: np.ndarray  # grey-matter probability
    wm: np.ndarray  # white-matter probability
    csf: np.ndarray  # brain minus GM minus WM (ventricles, sulci)
    brain: np.ndarray  # bool brain mask
    resolution_mm: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.brain.shape

    @property
    def tissue(self) -> np.ndarray:
        """Brain outside CSF (csf < 0.6): where an infarct and ADC < 620 can lie."""
        return self.brain & (self.csf < 0.6)

    def world_coordinates(self) -> np.ndarray:
        """RAS mm coordinates of every voxel centre, shape (3, X, Y, Z)."""
        ijk = np.indices(self.shape, dtype=np.float64)
        return np.einsum("ij,j...->i...", self.affine[:3, :3], ijk) + self.affine[:3, 3, None, None, None]


@lru_cache(maxsize=4)
def load_anatomy(resolution_mm: int) -> Anatomy:
    from nilearn import datasets

    resolution_mm = int(resolution_mm)  # nilearn resamples its 1 mm template to whole millimetres
    t1_img = datasets.load_mni152_template(resolution=resolution_mm)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=resolution_mm).get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=resolution_mm).get_fdata(), dtype=np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=resolution_mm).get_fdata()) > 0.5
    # Fill holes so the ventricles count as brain (CSF), as they do in a patient's brain mask.
    brain = ndimage.binary_fill_holes(brain)
    gm = np.clip(gm, 0, 1) * brain
    wm = np.clip(wm, 0, 1) * brain
    total = gm + wm
    over = total > 1
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.clip(1.0 - gm - wm, 0, 1) * brain
    t1 = np.asarray(t1_img.get_fdata(), dtype=np.float32)
    return Anatomy(
        affine=np.asarray(t1_img.affine, dtype=np.float64),
        t1=t1,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf.astype(np.float32),
        brain=brain,
        resolution_mm=float(resolution_mm),
    )


def save_anatomy(anat: Anatomy, path: str | Path) -> Path:
    """Write ``anat`` as an uncompressed .npz (exact arrays), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{f.name: np.asarray(getattr(anat, f.name)) for f in fields(Anatomy)})
    return path


def read_anatomy(path: str | Path, resolution_mm: int) -> Anatomy:
    """The anatomy that :func:`save_anatomy` wrote, when it is of ``resolution_mm``; else (no file,
    another grid, unreadable) :func:`load_anatomy` computes it.

    The simulated dataset's plan writes it once, so each participant's job reads a few MB
    instead of importing nilearn and resampling the 1 mm template again (~4 CPU s a job).
    """
    path = Path(path)
    try:
        with np.load(path) as npz:
            arrays = {f.name: npz[f.name] for f in fields(Anatomy)}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return load_anatomy(int(resolution_mm))
    if float(arrays["resolution_mm"]) != float(int(resolution_mm)):
        return load_anatomy(int(resolution_mm))
    arrays["resolution_mm"] = float(arrays["resolution_mm"])
    return Anatomy(**arrays)


def smooth_noise(rng: np.random.Generator, shape, sigma_vox: float, n: int = 1) -> np.ndarray:
    """Gaussian random field(s) of unit standard deviation, smoothed with ``sigma_vox``."""
    fields = []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="reflect")
        field /= field.std() + 1e-12
        fields.append(field.astype(np.float32))
    return fields[0] if n == 1 else np.stack(fields)
