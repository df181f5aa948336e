"""Reading NIfTI maps with the checks every stage relies on, and writing them atomically."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_path


def load_image(
    path: str | Path,
    participant: str | None = None,
    *,
    what: str = "image",
    allow_nan: bool = False,
    allow_constant: bool = False,
) -> nib.Nifti1Image:
    """Load a 3D NIfTI and refuse what would silently poison later stages.

    Refused: a missing or unreadable file, an image that is not 3D (a trailing axis of
    length 1 is dropped), NaN or infinite voxels, an image that holds one value only.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"the {what} is missing",
            participant=participant,
            path=path,
            fix="add the file with this BIDS name (see docs/data.md) or remove the participant from participants.tsv",
        )
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(
            f"the {what} cannot be read as NIfTI ({type(err).__name__}: {err})",
            participant=participant,
            path=path,
            fix="re-export the image from the scanner or the conversion tool (e.g. dcm2niix)",
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(
            f"the {what} has shape {tuple(data.shape)}, a 3D image is expected",
            participant=participant,
            path=path,
            fix="give one 3D volume per file (e.g. split a 4D series and keep the right volume)",
        )
    data = np.asarray(data, dtype=np.float32)
    if not allow_nan:
        bad = ~np.isfinite(data)
        if bad.any():
            raise InputError(
                f"the {what} holds {int(bad.sum())} NaN or infinite voxels",
                participant=participant,
                path=path,
                fix="set non-finite voxels to 0 (e.g. `fslmaths in -nan out`) after checking why they occur",
            )
    if not allow_constant and data.size and float(data.max()) == float(data.min()):
        raise InputError(
            f"the {what} is empty (every voxel is {float(data.min()):g})",
            participant=participant,
            path=path,
            fix="re-export the image; an empty map usually means a failed reconstruction",
        )
    out = nib.Nifti1Image(data, img.affine, img.header)
    out.set_data_dtype(np.float32)
    return out


def save_image(data: np.ndarray, affine: np.ndarray, path: str | Path, dtype=np.float32) -> None:
    """Write a NIfTI atomically with a clean header (qform and sform from ``affine``)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
