"""From preprocessed MNI-space NIfTIs to 2.5D training samples.

A participant's 8 input channels (``CHANNELS``: DWI, ADC, Tmax, MTT, CBF, CBV, tmax6s,
adc620), coverage mask and final-infarct target are read from the preprocessing stage's
derivatives and reoriented axial-first: ``(Z, C, A, B)``. A sample is the 5 consecutive
axial slices around a centre slice (edge slices repeated at the top and bottom of the
volume), flattened slice-major to 40 channels; only coverage voxels enter the loss.

All slices of all participants live in one tensor (optionally on the GPU), so a batch is
one gather, not a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tissuefate.config import section_defaults
from tissuefate.errors import InputError
from tissuefate.io.bids import validate_label
from tissuefate.io.derivatives import CHANNELS, MAP_NAMES, MASK_NAMES, final_infarct_mask, preproc_map, preproc_mask
from tissuefate.io.nifti import load_image

_N_SLICES = section_defaults("model")["n_slices"]
_FIX_PREPROC = "run the preprocessing stage for this participant (or remove them from the split)"


@dataclass
class ParticipantVolumes:
    """One participant's model inputs, axial axis first.

    ``inputs`` (Z, 8, A, B) float32, zero outside coverage; ``coverage`` and ``target``
    (Z, A, B) bool (``target`` None when not loaded); ``perm`` maps the file's voxel axes
    to (Z, A, B); ``lr_dim`` is the in-plane axis (-2 or -1) that runs left-right.
    """

    label: str
    inputs: np.ndarray
    coverage: np.ndarray
    target: np.ndarray | None
    affine: np.ndarray
    perm: tuple[int, int, int]
    lr_dim: int

    def to_file_grid(self, volume: np.ndarray) -> np.ndarray:
        """Put a (Z, A, B) volume back in the NIfTI file's voxel order."""
        return np.transpose(volume, np.argsort(self.perm))


def axial_permutation(affine: np.ndarray) -> tuple[tuple[int, int, int], int]:
    """Voxel-axis order that puts the inferior-superior axis first, and the in-plane L-R axis."""
    directions = np.abs(np.asarray(affine)[:3, :3])
    directions = directions / np.maximum(directions.sum(axis=0, keepdims=True), 1e-12)
    axial = int(np.argmax(directions[2]))
    in_plane = [j for j in range(3) if j != axial]
    lr = in_plane[int(np.argmax(directions[0, in_plane]))]
    return (axial, *in_plane), -2 if lr == in_plane[0] else -1


def input_paths(results: str | Path, label: str) -> dict[str, Path]:
    """The preprocessing derivatives a participant's model input is read from."""
    paths = {name: preproc_map(results, label, name, desc="normalized") for name in MAP_NAMES}
    paths.update({name: preproc_mask(results, label, name) for name in MASK_NAMES})
    paths["coverage"] = preproc_mask(results, label, "coverage")
    return paths


def load_participant(results: str | Path, participant: str, with_target: bool = True) -> ParticipantVolumes:
    """Read and check one participant's 8 channels, coverage mask and (optionally) target."""
    label = validate_label(participant)
    paths = input_paths(results, label)
    cov_img = load_image(paths["coverage"], label, what="coverage mask", allow_constant=True)
    affine = cov_img.affine
    shape = cov_img.shape
    coverage = np.asarray(cov_img.dataobj) > 0.5
    if not coverage.any():
        raise InputError("the coverage mask is empty: no voxel has both diffusion and perfusion coverage",
                         participant=label, path=paths["coverage"], fix=_FIX_PREPROC)

    def checked(path: Path, what: str, **kw) -> np.ndarray:
        img = load_image(path, label, what=what, **kw)
        if img.shape != shape or not np.allclose(img.affine, affine, atol=1e-3):
            raise InputError(
                f"the {what} has grid {img.shape} but the coverage mask has {shape} (or the affines differ)",
                participant=label, path=path, fix="resample every map to the same MNI grid in preprocessing",
            )
        return np.asarray(img.dataobj, dtype=np.float32)

    channels = []
    for name in CHANNELS:
        if name in MAP_NAMES:
            data = checked(paths[name], f"normalized {name} map", allow_nan=True)
            bad = ~np.isfinite(data) & coverage
            if bad.any():
                raise InputError(f"the normalized {name} map holds {int(bad.sum())} NaN or infinite voxels inside the coverage mask",
                                 participant=label, path=paths[name], fix="check the map's normalization in preprocessing")
        else:
            data = (checked(paths[name], f"{name} mask", allow_constant=True) > 0.5).astype(np.float32)
        # Outside coverage the values are meaningless: the model sees zeros there.
        channels.append(np.where(coverage, data, 0.0).astype(np.float32))

    target = None
    if with_target:
        target = checked(final_infarct_mask(results, label), "final infarct mask", allow_constant=True) > 0.5

    perm, lr_dim = axial_permutation(affine)
    inputs = np.stack([np.transpose(c, perm) for c in channels], axis=1)  # (Z, C, A, B)
    return ParticipantVolumes(
        label=label,
        inputs=np.ascontiguousarray(inputs),
        coverage=np.ascontiguousarray(np.transpose(coverage, perm)),
        target=None if target is None else np.ascontiguousarray(np.transpose(target, perm)),
        affine=np.asarray(affine),
        perm=perm,
        lr_dim=lr_dim,
    )


def padded_size(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class SliceDataset:
    """Every axial slice of a list of participants, padded in-plane to ``size_multiple``.

    ``sample_slices`` lists the slices with at least one coverage voxel (the ones trained on).
    ``batch(index)`` builds the 2.5D inputs of those centre slices.
    """

    def __init__(
        self,
        volumes: list[ParticipantVolumes],
        n_slices: int = _N_SLICES,
        size_multiple: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        if not volumes:
            raise ValueError("SliceDataset needs at least one participant")
        if len({v.lr_dim for v in volumes}) != 1:
            raise InputError("participants disagree on the left-right axis of their MNI grid",
                             path=volumes[0].label, fix="write every participant on the same MNI grid")
        self.labels = [v.label for v in volumes]
        self.lr_dim = volumes[0].lr_dim
        self.n_slices = n_slices
        self.in_plane = [v.inputs.shape[-2:] for v in volumes]
        H = padded_size(max(s[0] for s in self.in_plane), size_multiple)
        W = padded_size(max(s[1] for s in self.in_plane), size_multiple)
        n_total = sum(v.inputs.shape[0] for v in volumes)
        n_ch = volumes[0].inputs.shape[1]
        inputs = np.zeros((n_total, n_ch, H, W), np.float32)
        coverage = np.zeros((n_total, H, W), np.float32)
        target = np.zeros((n_total, H, W), np.float32)
        patient = np.zeros(n_total, np.int64)
        first = np.zeros(n_total, np.int64)
        last = np.zeros(n_total, np.int64)
        self.has_target = all(v.target is not None for v in volumes)
        z0 = 0
        self.slice_ranges = []
        for i, v in enumerate(volumes):
            z, _, a, b = v.inputs.shape
            sl = slice(z0, z0 + z)
            inputs[sl, :, :a, :b] = v.inputs
            coverage[sl, :a, :b] = v.coverage
            if v.target is not None:
                target[sl, :a, :b] = v.target
            patient[sl], first[sl], last[sl] = i, z0, z0 + z - 1
            self.slice_ranges.append((z0, z0 + z))
            z0 += z
        device = torch.device(device)
        self.device = device
        self.inputs = torch.from_numpy(inputs).to(device)
        self.coverage = torch.from_numpy(coverage).to(device)
        self.target = torch.from_numpy(target).to(device)
        self.patient = torch.from_numpy(patient).to(device)
        self._first = torch.from_numpy(first).to(device)
        self._last = torch.from_numpy(last).to(device)
        self._offsets = torch.arange(n_slices, device=device) - n_slices // 2
        self.sample_slices = torch.nonzero(self.coverage.flatten(1).amax(1) > 0).flatten()

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_participants(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor, flip: torch.Tensor | None = None):
        """Inputs (B, n_slices * 8, H, W), coverage (B, H, W), target (B, H, W).

        Neighbours beyond a participant's first or last slice repeat the edge slice.
        ``flip``: bool (B,), mirror those samples left-right (augmentation).
        """
        index = index.to(self.device)
        neighbours = (index[:, None] + self._offsets).clamp(self._first[index, None], self._last[index, None])
        x = self.inputs[neighbours].flatten(1, 2)
        cov, y = self.coverage[index], self.target[index]
        if flip is not None and bool(flip.any()):
            flip = flip.to(self.device)
            x = torch.where(flip[:, None, None, None], x.flip(self.lr_dim), x)
            cov = torch.where(flip[:, None, None], cov.flip(self.lr_dim), cov)
            y = torch.where(flip[:, None, None], y.flip(self.lr_dim), y)
        return x, cov, y

    def unpad(self, slices: np.ndarray, participant: int) -> np.ndarray:
        """Crop a participant's (Z, H, W) stack back to its own in-plane size."""
        a, b = self.in_plane[participant]
        return slices[:, :a, :b]


def load_dataset(
    results: str | Path,
    participants: list[str],
    n_slices: int = _N_SLICES,
    size_multiple: int = 8,
    *,
    with_target: bool = True,
    device: str | torch.device = "cpu",
) -> SliceDataset:
    return SliceDataset([load_participant(results, p, with_target) for p in participants], n_slices, size_multiple, device)
