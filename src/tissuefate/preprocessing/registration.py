"""Registration with ANTs (antspyx): rigid coregistration onto the baseline DWI, affine + SyN
normalization to the MNI template, and resampling with one composed transform.

Conventions. Every function takes and returns file paths, so the nipype interfaces that
wrap them stay one line each. Transform lists follow ANTs: ``[last, ..., first]`` maps
points of the output (reference) grid back into the moving image, so a baseline map goes
to MNI with ``[dwi_to_mni.h5]`` and a perfusion map with ``[dwi_to_mni.h5, perf_to_dwi.mat]``.
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from tissuefate.config import section_defaults
from tissuefate.io.atomic import atomic_path

_PRE = section_defaults("preprocessing")

INTERPOLATION = {"continuous": "linear", "mask": "genericLabel"}

# ants.registration settings of every rigid step (coregistration here, the DSC frames'
# motion correction in perfusion/motion.py). Mattes MI on every voxel, not ANTs' 20 % random
# sample: with sampling, 3 runs in 10 of one CI patient's FLAIR stopped in another optimum
# 4-8 mm away (dense: within 0.1 mm). Levels at 1/4 and 1/2 resolution only (a
# full-resolution level moved the result by 0.3 mm for twice the time; ANTs' default 1/6
# level is coarser than the slices).
RIGID_SETTINGS = dict(
    aff_metric="mattes",
    aff_random_sampling_rate=1.0,
    aff_iterations=(500, 200, 0),
    aff_shrink_factors=(4, 2, 1),
    aff_smoothing_sigmas=(2, 1, 0),
)


# `import ants` (antspyx 0.6.3) runs every subpackage, and some of them import libraries at
# module level that the pipeline never calls: ants.learn (eigenanatomy) and ants.math.quantile
# import statsmodels (for regression helpers), ants.deeplearn imports scikit-learn. That is
# 0.5 of the 1.7 CPU s of `import ants`, paid again in every preprocessing and prediction job
# (81 processes in the demo). import_ants() imports antspyx with those two subpackages left out and
# statsmodels' modules as stand-ins that import the real module on first use; every name stays
# reachable (ants.eig_seg, ants.learn, `import ants.deeplearn`). Neither subpackage registers
# methods on ANTsImage (ants.plotting does, and is imported as usual).
DEFERRED_ANTS_SUBPACKAGES = ("ants.learn", "ants.deeplearn")
ON_FIRST_USE_DURING_ANTS_IMPORT = ("statsmodels.api", "statsmodels.formula", "statsmodels.formula.api")


class _OnFirstUse(types.ModuleType):
    """Stands in for a module while antspyx imports; the real module is imported when one of
    its attributes is first used."""

    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # the import system's probes (__path__, ...) load nothing
            raise AttributeError(attr)
        child = f"{self.__name__}.{attr}"
        stand_in = sys.modules.get(child)
        if isinstance(stand_in, _OnFirstUse):  # `import statsmodels.formula.api as smf`
            return stand_in
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def import_ants():
    """antspyx, imported once per process (lazily: only the registration steps need it) without
    the subpackages and libraries it never needs here (see above)."""
    ants = sys.modules.get("ants")
    if ants is not None:
        return ants
    stand_ins: dict[str, types.ModuleType] = {}
    for name in DEFERRED_ANTS_SUBPACKAGES:  # `from .learn import *` finds an empty module
        stand_ins[name] = types.ModuleType(name)
        stand_ins[name].__all__ = []
    for name in ON_FIRST_USE_DURING_ANTS_IMPORT:
        stand_ins[name] = _OnFirstUse(name)
    stand_ins = {name: module for name, module in stand_ins.items() if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        import ants
    finally:  # a later import of any of them is the real one
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    for name in DEFERRED_ANTS_SUBPACKAGES:
        attr = name.rpartition(".")[2]
        if name in stand_ins and getattr(ants, attr, None) is stand_ins[name]:
            delattr(ants, attr)

    def deferred(attr: str):
        """PEP 562 fallback of the ants module: a left-out subpackage, or one of its names."""
        if not attr.startswith("__"):
            for name in DEFERRED_ANTS_SUBPACKAGES:
                sub = importlib.import_module(name)
                if attr == name.rpartition(".")[2]:
                    return sub
                if hasattr(sub, attr):
                    return getattr(sub, attr)
        raise AttributeError(f"module 'ants' has no attribute {attr!r}")

    ants.__getattr__ = deferred
    return ants


def set_random_seed(seed: int | None) -> None:
    """Seed ANTs' random metric sampling (antspyx passes it as --random-seed), so a rerun
    gives the same transform up to multithreaded float summation."""
    ants = import_ants()
    ants.config._random_seed = None if seed is None else int(seed)  # no public setter without forcing 1 thread


def read(path: str | Path):
    return import_ants().image_read(str(path))


def write(img, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        import_ants().image_write(img, str(tmp))
    return path


def same_grid(a: str | Path, b: str | Path, atol_mm: float = 1e-3) -> bool:
    """True when two images share shape and voxel-to-world affine (e.g. DWI and ADC)."""
    ia, ib = nib.load(str(a)), nib.load(str(b))
    return ia.shape[:3] == ib.shape[:3] and np.allclose(ia.affine, ib.affine, atol=atol_mm)


def fov_overlap_fraction(moving: str | Path, reference: str | Path, stride: int = 2) -> float:
    """Fraction of ``moving``'s voxel centres that lie inside ``reference``'s field of view,
    by the headers alone (before any registration). 0 means the two never meet."""
    im, ir = nib.load(str(moving)), nib.load(str(reference))
    grid = np.stack(np.meshgrid(*[np.arange(0, n, stride) for n in im.shape[:3]], indexing="ij"), -1).reshape(-1, 3)
    world = grid @ im.affine[:3, :3].T + im.affine[:3, 3]
    ijk = (world - ir.affine[:3, 3]) @ np.linalg.inv(ir.affine[:3, :3]).T
    inside = np.all((ijk >= -0.5) & (ijk <= np.array(ir.shape[:3]) - 0.5), axis=1)
    return float(inside.mean())


def coregister_rigid(
    fixed: str | Path,
    moving: str | Path,
    out_prefix: str | Path,
    *,
    initialization: str = "identity",
    rank_intensities: bool = False,
) -> Path:
    """Rigid (6 dof) Mattes mutual-information registration of ``moving`` onto ``fixed``.

    ``initialization``: "identity" trusts the scanner coordinates (same session, or a
    session where the head is near the isocentre again); "center_of_mass" first aligns the
    intensity centres (whole-head images from another session). ``rank_intensities``
    replaces both images by their intensity ranks first: Mattes MI bins intensities by
    equal width, so in a Tmax map the lesion (up to 20 s and more) takes every bin and the
    brain (about 0.5 s) and the background (0) fall in one; ranks give each its share.
    Returns the ANTs
    ``.mat`` transform that maps ``moving`` onto ``fixed``.
    """
    ants = import_ants()
    init = {"identity": "Identity", "center_of_mass": None}[initialization]
    fixed_img, moving_img = read(fixed), read(moving)
    if rank_intensities:
        fixed_img, moving_img = _ranks(fixed_img), _ranks(moving_img)
    reg = ants.registration(
        fixed_img,
        moving_img,
        "Rigid",
        initial_transform=init,
        outprefix=str(out_prefix),
        **RIGID_SETTINGS,
    )
    return Path(reg["fwdtransforms"][0])


def _ranks(img):
    """The image's values replaced by their rank in [0, 1] (ties share one rank)."""
    data = img.numpy()
    _, inverse = np.unique(data, return_inverse=True)
    ranks = inverse.reshape(data.shape).astype(np.float32)
    return img.new_image_like(ranks / max(float(ranks.max()), 1.0))


def normalize_to_template(
    moving: str | Path,
    template: str | Path,
    template_mask: str | Path,
    metric_mask: str | Path | None,
    out_prefix: str | Path,
    *,
    syn_iterations: Sequence[int] = tuple(_PRE["syn_iterations"]),
    template_mask_dilation_vox: int = 2,
) -> tuple[Path, Path, Path]:
    """Affine + SyN (Mattes MI) of the baseline DWI onto the template.

    ``metric_mask`` (on ``moving``'s grid, 1 = use) keeps the lesion out of the similarity
    metric so the stroke does not drag the warp; the template's brain mask, dilated, keeps
    the metric on the brain. Returns the forward composite (native -> MNI, for
    resampling native images into MNI), the inverse composite, and the warped image.
    """
    ants = import_ants()
    fixed = read(template)
    fmask = ants.iMath(read(template_mask), "MD", int(template_mask_dilation_vox))
    mmask = read(metric_mask) if metric_mask is not None else None
    reg = ants.registration(
        fixed,
        read(moving),
        "SyN",
        mask=fmask,
        moving_mask=mmask,
        reg_iterations=tuple(int(i) for i in syn_iterations),
        outprefix=str(out_prefix),
        write_composite_transform=True,
    )
    warped = write(reg["warpedmovout"], f"{out_prefix}warped.nii.gz")
    return Path(reg["fwdtransforms"]), Path(reg["invtransforms"]), warped


def apply_transforms(
    moving: str | Path,
    reference: str | Path,
    transforms: Sequence[str | Path],
    out: str | Path,
    *,
    interpolation: str = "linear",
    time_series: bool = False,
) -> Path:
    """Resample ``moving`` onto ``reference`` through ``transforms`` (ANTs order), once.

    An empty list resamples by the headers alone (the identity). ``time_series``: ``moving``
    is 4D and every volume goes through the same transforms (read once), each resampled
    exactly as alone."""
    ants = import_ants()
    ref, mov = read(reference), read(moving)
    if time_series and not transforms:
        raise ValueError("a time series needs at least one transform")
    if transforms:
        out_img = ants.apply_transforms(ref, mov, [str(t) for t in transforms], interpolator=interpolation,
                                        imagetype=3 if time_series else 0)
    else:
        interp = "nearestNeighbor" if interpolation in ("genericLabel", "nearestNeighbor") else "linear"
        out_img = ants.resample_image_to_target(mov, ref, interp_type=interp)
    return write(out_img, out)


def fov_indicator(image: str | Path, out: str | Path) -> Path:
    """An image of ones on ``image``'s grid: resampled to MNI it marks where the image has data."""
    img = nib.load(str(image))
    ones = nib.Nifti1Image(np.ones(img.shape[:3], np.uint8), img.affine)
    with atomic_path(out) as tmp:
        nib.save(ones, str(tmp))
    return Path(out)


def lesion_metric_mask(
    adc: str | Path,
    dwi: str | Path,
    reference: str | Path,
    adc_transforms: Sequence[str | Path],
    out: str | Path,
    *,
    adc_factor: float,
    adc_threshold_um2_per_s: float,
    dilation_mm: float,
    adc_min_valid_um2_per_s: float = _PRE["adc_min_valid_um2_per_s"],
    csf_adc_min_um2_per_s: float = _PRE["csf_adc_min_um2_per_s"],
    min_dwi_ratio: float = 1.0,
    min_cluster_ml: float = 0.5,
) -> tuple[Path, float]:
    """The similarity-metric mask for normalization, on ``reference``'s grid: everything
    except the acute lesion, dilated by ``dilation_mm``.

    Lesion = restricted diffusion: ADC below threshold (above ``adc_min_valid``: lower is
    background) where the b1000 DWI is at least ``min_dwi_ratio`` x the median of
    normal-ADC head voxels (drops the partial-volume rim at the brain surface, whose low
    ADC is a mix with signal-free background), in clusters of ``min_cluster_ml`` or more
    (drops scattered noise). Returns the mask path and the excluded volume in mL."""
    from scipy import ndimage

    ants = import_ants()
    ref = read(reference)
    dwi_img = read(dwi)
    adc_img = read(adc) * float(adc_factor)
    if adc_transforms:
        adc_img = ants.apply_transforms(dwi_img, adc_img, [str(t) for t in adc_transforms], interpolator="linear")
    elif not _same_space(adc_img, dwi_img):
        adc_img = ants.resample_image_to_target(adc_img, dwi_img)
    a, d = adc_img.numpy(), dwi_img.numpy()
    head = ants.get_mask(dwi_img, cleanup=2).numpy() > 0
    normal = head & (a >= adc_threshold_um2_per_s) & (a < csf_adc_min_um2_per_s)
    dwi_ref = float(np.median(d[normal])) if normal.any() else 0.0
    lesion = head & (a > adc_min_valid_um2_per_s) & (a < adc_threshold_um2_per_s) & (d >= min_dwi_ratio * dwi_ref)
    voxel_ml = float(np.prod(dwi_img.spacing)) / 1000.0
    labels, n = ndimage.label(lesion)
    if n:
        sizes = ndimage.sum(lesion, labels, index=np.arange(1, n + 1)) * voxel_ml
        lesion = np.isin(labels, 1 + np.flatnonzero(sizes >= min_cluster_ml))
    les_img = dwi_img.new_image_like(lesion.astype(np.float32))
    if not _same_space(les_img, ref):
        les_img = ants.resample_image_to_target(les_img, ref, interp_type="nearestNeighbor")
    radius = int(math.ceil(dilation_mm / min(ref.spacing))) if dilation_mm > 0 else 0
    if radius and les_img.numpy().any():
        les_img = ants.iMath(les_img, "MD", radius)
    excluded = les_img.numpy() > 0
    write(ref.new_image_like((~excluded).astype(np.float32)), out)
    return Path(out), float(excluded.sum() * np.prod(ref.spacing) / 1000.0)


def _same_space(a, b) -> bool:
    return (
        a.shape == b.shape
        and np.allclose(a.origin, b.origin, atol=1e-3)
        and np.allclose(a.spacing, b.spacing, atol=1e-5)
        and np.allclose(a.direction, b.direction, atol=1e-5)
    )
