"""A known-truth participant for tests and the benchmark: the MNI template seen through a
known affine + smooth warp, written as a raw BIDS participant plus the simulator's truth
contract (``derivatives/simulation/sub-<label>/``).

It is deliberately independent of ``tissuefate.simulation``: registration tests must not
depend on the cohort simulator, and the simulator's output is checked with the same
:func:`tissuefate.preprocessing.qc.registration_accuracy` on top of this.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from tissuefate.io.bids import ParticipantFiles, sidecar_path, write_json
from tissuefate.io.nifti import save_image


@dataclass(frozen=True)
class PhantomSpec:
    label: str = "phantom"
    seed: int = 0
    native_mm: float = 3.0  # DWI voxel size
    mni_mm: float = 3.0  # grid of the truth masks
    rotation_deg: float = 10.0
    shift_mm: float = 8.0
    scale: float = 1.05  # brain size relative to the template
    deformation_mm: float = 2.0  # amplitude of the smooth nonlinear part
    side: str = "left"  # left, right or bilateral
    with_perfusion: bool = True
    with_b0: bool = True
    perfusion_z_coverage: float = 0.75  # fraction of the DWI slab the perfusion slab covers
    noise: float = 0.03
    write_flair: bool = True
    write_followup: bool = True


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rigid(rng: np.random.Generator, rotation_deg: float, shift_mm: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = _rotation(rng.uniform(-rotation_deg, rotation_deg, 3))
    m[:3, 3] = rng.uniform(-shift_mm, shift_mm, 3)
    return m


@lru_cache(maxsize=1)
def _tissue_1mm() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM, CSF fractions and a scalp shell on the 1 mm template grid, plus its affine."""
    from nilearn import datasets

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    gm = gm_img.get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    brain = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32) > 0
    csf = np.clip(brain.astype(np.float32) - gm - wm, 0, 1)
    # A scalp 4-10 mm outside the brain: clinical DWI is not skull-stripped.
    dist = ndimage.distance_transform_edt(~brain)
    scalp = ((dist > 4) & (dist < 10)).astype(np.float32)
    return gm, wm, csf, scalp, gm_img.affine


def _sample(volume: np.ndarray, affine: np.ndarray, mni_xyz: np.ndarray, sigma_vox: float) -> np.ndarray:
    vol = ndimage.gaussian_filter(volume, sigma_vox) if sigma_vox > 0 else volume
    ijk = np.linalg.inv(affine) @ np.vstack([mni_xyz.reshape(-1, 3).T, np.ones(mni_xyz.size // 3)])
    out = ndimage.map_coordinates(vol, ijk[:3], order=1, mode="constant", cval=0.0)
    return out.reshape(mni_xyz.shape[:-1])


class _Subject:
    """Maps scanner coordinates of the baseline session to MNI: y = A p + d(A p)."""

    def __init__(self, spec: PhantomSpec, rng: np.random.Generator):
        self.spec = spec
        to_mni = _rigid(rng, spec.rotation_deg, spec.shift_mm)
        to_mni[:3, :3] = to_mni[:3, :3] / spec.scale
        self.to_mni = to_mni
        # Smooth warp: a few low-frequency sinusoids per axis (wavelength 80-160 mm).
        self.waves = [
            (rng.uniform(-1, 1, 3) * 2 * np.pi / rng.uniform(80, 160), rng.uniform(0, 2 * np.pi))
            for _ in range(3)
        ]

    def mni(self, world_xyz: np.ndarray) -> np.ndarray:
        p = world_xyz @ self.to_mni[:3, :3].T + self.to_mni[:3, 3]
        if self.spec.deformation_mm > 0:
            disp = np.stack([np.sin(p @ k + ph) for k, ph in self.waves], axis=-1)
            p = p + self.spec.deformation_mm * disp
        return p


def _grid_world(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _native_affine(voxel_mm: tuple[float, float, float], shape: tuple[int, int, int], tilt: np.ndarray) -> np.ndarray:
    """An LAS grid (like most scanners' NIfTI) centred on the scanner origin, slightly oblique."""
    a = np.diag([-voxel_mm[0], voxel_mm[1], voxel_mm[2], 1.0])
    a[:3, :3] = tilt[:3, :3] @ a[:3, :3]
    centre = a[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    a[:3, 3] = -centre + np.array([0.0, -18.0, 12.0])
    return a


def _lesion_regions(spec: PhantomSpec, mni_xyz: np.ndarray) -> dict[str, np.ndarray]:
    """Soft ellipsoids (MCA territory) for core, final infarct and hypoperfusion, in [0, 1]."""
    sides = {"left": [-1], "right": [1], "bilateral": [-1, 1]}[spec.side]
    out = {}
    for name, radii in (("core", (10, 13, 10)), ("final", (15, 19, 14)), ("hypoperfused", (22, 28, 20))):
        val = np.zeros(mni_xyz.shape[:-1], np.float32)
        for s in sides:
            centre = np.array([s * 36.0, -8.0, 12.0])
            r = np.sqrt((((mni_xyz - centre) / np.array(radii)) ** 2).sum(-1))
            val = np.maximum(val, np.clip((1.15 - r) / 0.3, 0, 1))
        out[name] = val
    return out


def _images(spec: PhantomSpec, mni_xyz: np.ndarray, sigma_vox: float) -> dict[str, np.ndarray]:
    gm_v, wm_v, csf_v, scalp_v, aff = _tissue_1mm()
    gm, wm, csf, scalp = (_sample(v, aff, mni_xyz, sigma_vox) for v in (gm_v, wm_v, csf_v, scalp_v))
    tissue = np.clip(gm + wm, 0, 1)
    les = {k: v * tissue for k, v in _lesion_regions(spec, mni_xyz).items()}
    core, final, hypo = les["core"], les["final"], les["hypoperfused"]
    return {
        "b0": (1.0 * gm + 0.8 * wm + 2.0 * csf + 0.5 * scalp) * (1 + 0.2 * core),
        "b1000": (1.0 * gm + 0.85 * wm + 0.25 * csf + 0.1 * scalp) * (1 + 1.0 * core),
        "adc": (800 * gm + 720 * wm + 3000 * csf + 1100 * scalp) * (1 - 0.45 * core),
        "Tmax": (0.5 * (gm + wm + csf) + 11.0 * hypo * tissue),
        "CBF": (55 * gm + 25 * wm + 4 * csf) * (1 - 0.5 * hypo - 0.3 * core),
        "CBV": (4.0 * gm + 2.0 * wm + 0.8 * csf) * (1 - 0.5 * core),
        "FLAIR": (1.1 * gm + 0.9 * wm + 0.2 * csf + 0.6 * scalp) * (1 + 0.9 * final),
        "tmax_followup": 0.5 * (gm + wm + csf) + 11.0 * core * tissue,  # partial reperfusion
        "final": final,
        "brain": gm + wm + csf,
    }


def write_phantom_participant(bids_root: str | Path, spec: PhantomSpec = PhantomSpec()) -> dict:
    """Write one known-truth participant; return the truth (also written as JSON)."""
    rng = np.random.default_rng(spec.seed)
    files = ParticipantFiles(Path(bids_root), spec.label)
    subject = _Subject(spec, rng)
    nv = spec.native_mm
    fov = np.array([210.0, 230.0, 180.0])
    dwi_shape = tuple(int(n) for n in np.round(fov / nv))
    dwi_aff = _native_affine((nv, nv, nv), dwi_shape, _rigid(rng, 4.0, 0.0))
    dwi_world = _grid_world(dwi_shape, dwi_aff)
    dwi_mni = subject.mni(dwi_world)
    sigma = 0.4 * nv  # partial-volume blur in 1 mm template voxels
    imgs = _images(spec, dwi_mni, sigma)

    def noisy(x: np.ndarray, scale: float) -> np.ndarray:
        return np.abs(x + rng.normal(0, spec.noise * scale, x.shape)).astype(np.float32)

    out: dict = {"spec": asdict(spec), "to_mni_affine": subject.to_mni.tolist()}
    save_image(noisy(imgs["b1000"], 1.0), dwi_aff, files.baseline("b1000"))
    if spec.with_b0:
        save_image(noisy(imgs["b0"], 2.0), dwi_aff, files.baseline("b0"))
    save_image(noisy(imgs["adc"], 1000.0), dwi_aff, files.baseline("adc"))
    write_json(sidecar_path(files.baseline("adc")), {"Units": "10^-6 mm^2/s"})

    def session_grid(voxel: tuple[float, float, float], z_fraction: float, motion_deg: float):
        motion = _rigid(rng, motion_deg, 3.0)  # session scanner -> baseline scanner
        shape = tuple(int(n) for n in np.round(fov * np.array([1, 1, z_fraction]) / np.array(voxel)))
        aff = _native_affine(voxel, shape, _rigid(rng, 4.0, 0.0))
        world = _grid_world(shape, aff)
        baseline_world = world @ motion[:3, :3].T + motion[:3, 3]
        return shape, aff, subject.mni(baseline_world), motion

    if spec.with_perfusion:
        pvox = (nv, nv, max(nv, 5.0))
        _, p_aff, p_mni, p_motion = session_grid(pvox, spec.perfusion_z_coverage, 3.0)
        pimgs = _images(spec, p_mni, 0.4 * pvox[2])
        cbf, cbv = pimgs["CBF"], pimgs["CBV"]
        mtt = np.where(cbf > 1, 60.0 * cbv / np.maximum(cbf, 1e-3), 0.0)
        maps = {"Tmax": pimgs["Tmax"], "MTT": mtt, "CBF": cbf, "CBV": cbv}
        units = {"Tmax": "s", "MTT": "s", "CBF": "mL/100g/min", "CBV": "mL/100g"}
        for name, data in maps.items():
            save_image(noisy(data, float(np.percentile(data, 99)) or 1.0), p_aff, files.baseline(name))
            write_json(sidecar_path(files.baseline(name)), {"Units": units[name]})
        out["perfusion_motion"] = p_motion.tolist()
        if spec.write_followup:
            _, f_aff, f_mni, _ = session_grid(pvox, spec.perfusion_z_coverage, 3.0)
            fu = _images(spec, f_mni, 0.4 * pvox[2])["tmax_followup"]
            save_image(noisy(fu, 10.0), f_aff, files.tmax_followup)
            write_json(sidecar_path(files.tmax_followup), {"Units": "s", "HoursSinceBaseline": 12})

    if spec.write_flair:
        fvox = (nv / 2, nv / 2, max(nv, 5.0))
        _, fl_aff, fl_mni, _ = session_grid(fvox, 1.0, 4.0)
        fl = _images(spec, fl_mni, 0.3 * nv)
        save_image(noisy(fl["FLAIR"], 1.0), fl_aff, files.flair_final)
        write_json(sidecar_path(files.flair_final), {"HoursSinceBaseline": 96})
        save_image((fl["final"] > 0.5).astype(np.uint8), fl_aff, files.infarct_mask, dtype=np.uint8)

    # Truth contract (the same as tissuefate.simulation writes).
    truth = files.truth_dir()
    from tissuefate.io.derivatives import SPACE

    m = spec.mni_mm
    mshape = tuple(int(n) for n in np.floor(np.array([196.0, 232.0, 188.0]) / m) + 1)
    m_aff = np.diag([m, m, m, 1.0])
    m_aff[:3, 3] = (-98.0, -134.0, -72.0)
    mni_grid = _grid_world(mshape, m_aff)
    mimgs = _images(spec, mni_grid, 0.0)
    sub = files.sub
    save_image((mimgs["final"] > 0.5).astype(np.uint8), m_aff, truth / f"{sub}_space-{SPACE}_desc-infarct_mask.nii.gz", dtype=np.uint8)
    save_image((mimgs["brain"] > 0.5).astype(np.uint8), m_aff, truth / f"{sub}_space-{SPACE}_desc-brain_mask.nii.gz", dtype=np.uint8)
    if spec.write_flair:
        save_image(mimgs["FLAIR"].astype(np.float32), m_aff, truth / f"{sub}_space-{SPACE}_FLAIR.nii.gz")
    save_image(dwi_mni.astype(np.float32), dwi_aff, truth / f"{sub}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz")
    write_json(truth / f"{sub}_desc-truth.json", out)
    return json.loads(json.dumps(out))
