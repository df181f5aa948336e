"""Anatomy of the simulated patients: the MNI152 2009a symmetric template that nilearn ships.

Nothing is downloaded: nilearn carries the 1 mm template, grey- and white-matter maps
and brain mask in its package data and resamples them to the requested resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage


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


def smooth_noise(rng: np.random.Generator, shape, sigma_vox: float, n: int = 1) -> np.ndarray:
    """Gaussian random field(s) of unit standard deviation, smoothed with ``sigma_vox``."""
    fields = []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="reflect")
        field /= field.std() + 1e-12
        fields.append(field.astype(np.float32))
    return fields[0] if n == 1 else np.stack(fields)
