"""Site protocols and the patient's own space: pose, deformation, grids, bias, noise.

The true native->MNI mapping of an image grid is q = T(M p): p is a scanner coordinate of
the image's voxel centre, M the head motion of that session relative to the baseline
DWI (identity for the DWI itself), T the patient's pose (rotation, shift) composed with a
smooth deformation. Every native image is sampled from the MNI-space truth through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tissuefate.simulation.anatomy import Anatomy, smooth_noise


@dataclass(frozen=True)
class Site:
    name: str
    institution: str
    manufacturer: str
    field_strength_t: float
    orientation: str  # axis codes of the stored voxel axes, e.g. "LAS"
    fov_mm: tuple[float, float, float]
    dwi_voxel: tuple[float, float, float]  # multiples of the configured native resolution
    perf_voxel: tuple[float, float, float]
    perf_coverage: float  # fraction of the diffusion slab's z extent covered by perfusion
    flair_voxel: tuple[float, float, float]
    adc_unit: str  # as written in the sidecar
    intensity_scale: float
    noise_fraction: float  # Rician noise sigma relative to white-matter b0 signal


SITES = (
    Site("siteA", "Simulated Stroke Center A", "SimVendor One", 3.0, "LAS",
         (240.0, 240.0, 156.0), (1.0, 1.0, 1.25), (1.2, 1.2, 1.5), 0.80, (0.8, 0.8, 1.5),
         "10^-6 mm^2/s", 1.0, 0.015),
    Site("siteB", "Simulated University Hospital B", "SimVendor Two", 1.5, "RAS",
         (230.0, 230.0, 164.0), (0.9, 0.9, 1.1), (1.1, 1.1, 1.6), 0.76, (0.9, 0.9, 1.3),
         "10^-3 mm^2/s", 2.6, 0.02),
    Site("siteC", "Simulated Regional Hospital C", "SimVendor Three", 3.0, "LPS",
         (250.0, 250.0, 150.0), (1.1, 1.1, 1.0), (1.3, 1.3, 1.4), 0.86, (0.85, 0.85, 1.4),
         "10^-6 mm^2/s", 0.6, 0.018),
)
SITES_BY_NAME = {s.name: s for s in SITES}

# Scanner isocentre sits near the centre of the brain; MNI brain centre is about here.
HEAD_CENTRE_MNI = np.array([0.0, -18.0, 14.0])


def rotation_matrix(angles_deg) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid(angles_deg, shift_mm) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation_matrix(angles_deg)
    m[:3, 3] = shift_mm
    return m


def grid_affine(orientation: str, voxel_mm, fov_mm, centre=(0.0, 0.0, 0.0), z_offset_mm: float = 0.0):
    """Affine and shape of a grid centred on ``centre`` (scanner mm) with stored axis codes."""
    shape = tuple(max(int(round(f / v)), 8) for f, v in zip(fov_mm, voxel_mm))
    signs = {"L": -1.0, "R": 1.0, "P": -1.0, "A": 1.0, "I": -1.0, "S": 1.0}
    direction = np.array([signs[c] for c in orientation])
    affine = np.eye(4)
    affine[:3, :3] = np.diag(direction * np.asarray(voxel_mm, dtype=float))
    half = (np.asarray(shape) - 1) / 2.0
    affine[:3, 3] = np.asarray(centre) + np.array([0, 0, z_offset_mm]) - affine[:3, :3] @ half
    return affine, shape


@dataclass
class Pose:
    """The patient's head in the scanner: T(p) = R p + t + u(R p + t)."""

    matrix: np.ndarray  # 4x4 scanner -> MNI (rigid)
    displacement: np.ndarray  # (3, X, Y, Z) on the anatomy's MNI grid, mm
    mni_affine: np.ndarray

    def to_mni(self, scanner_xyz: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Map scanner points (3, N) to MNI RAS mm (3, N).

        ``where`` (bool, N): deform only those points; the others keep the rigid mapping R p + t
        (for points whose deformed position is not needed).
        """
        q, ijk = self.rigid_to_mni(scanner_xyz)
        return q + self.displacement_at(ijk, where)

    def rigid_to_mni(self, scanner_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """R p + t in MNI mm, and as voxel indices of the MNI grid."""
        q = self.matrix[:3, :3] @ scanner_xyz + self.matrix[:3, 3:4]
        return q, np.linalg.solve(self.mni_affine[:3, :3], q - self.mni_affine[:3, 3:4])

    def displacement_at(self, ijk: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """u (mm, float32) at MNI voxel indices ``ijk`` (3, N); 0 outside ``where`` if given."""
        if where is None:
            return np.stack([ndimage.map_coordinates(d, ijk, order=1, mode="nearest") for d in self.displacement])
        u = np.zeros(ijk.shape, dtype=self.displacement.dtype)
        sub = ijk[:, where]
        for axis, d in enumerate(self.displacement):
            u[axis, where] = ndimage.map_coordinates(d, sub, order=1, mode="nearest")
        return u

    def reach_voxels(self) -> float:
        """An upper bound of how far (MNI voxels) the deformation moves any point."""
        smallest = float(np.linalg.svd(self.mni_affine[:3, :3], compute_uv=False).min())
        return float(np.sqrt(3.0) * np.abs(self.displacement).max()) / smallest


def random_pose(anat: Anatomy, rng: np.random.Generator, max_rotation_deg: float, max_shift_mm: float,
                deformation_mm: float) -> Pose:
    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    shift = rng.uniform(-max_shift_mm, max_shift_mm, 3)
    # scanner -> MNI: rotate the head about the isocentre, then place it at the MNI brain centre.
    matrix = rigid(angles, HEAD_CENTRE_MNI + shift)
    # A smooth, small deformation (sigma 20 mm) of the patient's anatomy relative to the template.
    field = smooth_noise(rng, anat.shape, 20.0 / anat.resolution_mm, n=3) * (deformation_mm / np.sqrt(3))
    return Pose(matrix=matrix, displacement=field.astype(np.float32), mni_affine=anat.affine)


def session_motion(rng: np.random.Generator, rotation_deg: float, shift_mm: float) -> np.ndarray:
    return rigid(rng.uniform(-rotation_deg, rotation_deg, 3), rng.uniform(-shift_mm, shift_mm, 3))


def grid_points(affine: np.ndarray, shape) -> np.ndarray:
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return affine[:3, :3] @ ijk + affine[:3, 3:4]


def sample_to_grid(volumes: dict[str, np.ndarray], anat: Anatomy, pose: Pose, motion: np.ndarray,
                   affine: np.ndarray, shape, order: int = 1,
                   coords: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Sample MNI-space volumes onto a native grid; also return the true MNI coordinates
    (None with ``coords=False``: then only the points that can sample a nonzero value are deformed)."""
    p = grid_points(affine, shape)
    p = motion[:3, :3] @ p + motion[:3, 3:4]
    # Linear interpolation is local: a point whose neighbours are all zero samples 0.0 exactly,
    # so only the points near the volumes' nonzero box are interpolated (same values, fewer points).
    box = _support_box(volumes) if order <= 1 else None
    q_rigid, ijk_rigid = pose.rigid_to_mni(p)
    where = None
    if box is not None and not coords:
        where = _near_box(ijk_rigid, box, 2.0 + pose.reach_voxels() + 1.0)
    q = q_rigid + pose.displacement_at(ijk_rigid, where)
    ijk = np.linalg.solve(anat.affine[:3, :3], q - anat.affine[:3, 3:4])
    near = None if box is None else _near_box(ijk, box, 2.0)
    out = {}
    for name, vol in volumes.items():
        vol = np.asarray(vol, dtype=np.float32)
        if near is None:
            sampled = ndimage.map_coordinates(vol, ijk, order=order, mode="constant", cval=0.0)
        else:
            sampled = np.zeros(ijk.shape[1], dtype=np.float32)
            sampled[near] = ndimage.map_coordinates(vol, ijk[:, near], order=order, mode="constant", cval=0.0)
        out[name] = sampled.reshape(shape).astype(np.float32)
    return out, (q.reshape((3,) + tuple(shape)) if coords else None)


def _support_box(volumes: dict[str, np.ndarray]) -> list[tuple[int, int]] | None:
    """First and last index, per axis, of the voxels where any volume is nonzero (None: all zero)."""
    nonzero = np.zeros(next(iter(volumes.values())).shape, dtype=bool)
    for vol in volumes.values():
        nonzero |= np.asarray(vol) != 0
    box = []
    for axis in range(3):
        hits = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return [(0, -1)] * 3  # empty: no point is near
        box.append((int(hits[0]), int(hits[-1])))
    return box


def _near_box(ijk: np.ndarray, box: list[tuple[int, int]], margin: float) -> np.ndarray:
    """Points (columns of ``ijk``) less than ``margin`` voxels outside ``box`` on every axis."""
    near = np.ones(ijk.shape[1], dtype=bool)
    for axis, (lo, hi) in enumerate(box):
        if hi < lo:
            return np.zeros(ijk.shape[1], dtype=bool)
        near &= (ijk[axis] > lo - margin) & (ijk[axis] < hi + margin)
    return near


def bias_field(rng: np.random.Generator, shape, strength: float = 0.15) -> np.ndarray:
    """A smooth multiplicative receive-coil field, exp of a random low-order polynomial."""
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    c = rng.normal(0, 1, 6)
    log_field = c[0] * x + c[1] * y + c[2] * z + 0.5 * (c[3] * x * y + c[4] * y * z + c[5] * x * x)
    log_field = log_field / (np.abs(log_field).max() + 1e-9) * strength
    return np.exp(log_field).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise."""
    real = signal + rng.normal(0, sigma, signal.shape)
    imag = rng.normal(0, sigma, signal.shape)
    return np.sqrt(real * real + imag * imag).astype(np.float32)
