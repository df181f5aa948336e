"""The lesion model, in MNI space (equations in docs/simulation.md).

An occluded MCA-like territory gets a hypoperfusion severity s in [0, 1] that is worst at
its centre and milder where collaterals are good. Perfusion maps follow from s; the core
is where s exceeds a vulnerability threshold that falls with time since onset and is
lower in grey matter. The final infarct is the core plus the part of the hypoperfused
tissue that dies, which depends non-linearly on CBF, collaterals, tissue type and the
reperfusion achieved, with spatially smooth noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tissuefate.simulation.anatomy import Anatomy, smooth_noise

# MCA-like territories in MNI RAS mm for the left hemisphere (x is mirrored for the right):
# centre and ellipsoid radii. M1: the whole territory; M2: one division.
TERRITORIES = {
    "M1": ((-38.0, -12.0, 10.0), (30.0, 48.0, 34.0)),
    "M2_superior": ((-40.0, -4.0, 26.0), (28.0, 42.0, 28.0)),
    "M2_inferior": ((-44.0, -26.0, 2.0), (26.0, 42.0, 28.0)),
}

# Normal tissue values (GM, WM, CSF) for mixing by partial volume.
CBF_ML_100G_MIN = (58.0, 22.0, 0.0)
CBV_ML_100G = (4.2, 2.0, 0.0)
ADC_UM2_PER_S = (820.0, 720.0, 3000.0)
B0_SIGNAL = (620.0, 480.0, 1500.0)
FLAIR_SIGNAL = (1.0, 0.78, 0.18)
TMAX_NORMAL_S = 0.4


@dataclass
class LesionParams:
    side: str  # left, right or bilateral
    territory: str
    collateral: float  # 0 poor .. 1 good
    onset_to_imaging_h: float
    severity_scale: float  # < 0.3 makes a baseline Tmax lesion vanish (complete reperfusion)
    reperfusion_fraction: float  # 0 none .. 1 complete, drives the final infarct
    centre_jitter_mm: tuple[float, float, float]
    radius_scale: float
    # A small infarct that exists whatever the severity (a vessel that reopened before
    # imaging still leaves a small core): the most severe voxels up to this volume.
    guaranteed_infarct_ml: float = 0.0


@dataclass
class LesionMaps:
    severity: np.ndarray  # s in [0, 1]
    core: np.ndarray  # bool
    core_depth: np.ndarray  # 0..1 inside the core
    final_infarct: np.ndarray  # bool
    tmax_s: np.ndarray
    mtt_s: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    adc_um2_per_s: np.ndarray
    b0: np.ndarray
    flair: np.ndarray


def _mix(anat: Anatomy, values: tuple[float, float, float]) -> np.ndarray:
    return (values[0] * anat.gm + values[1] * anat.wm + values[2] * anat.csf).astype(np.float32)


def tmax_from_severity(severity: np.ndarray) -> np.ndarray:
    """Tmax (s) rises steeply with severity: s = 0.3 gives about 6 s, s = 1 gives 24 s."""
    return (TMAX_NORMAL_S + 23.6 * np.power(np.clip(severity, 0, 1), 1.25)).astype(np.float32)


def severity_map(anat: Anatomy, p: LesionParams, rng: np.random.Generator) -> np.ndarray:
    xyz = anat.world_coordinates()
    centre, radii = TERRITORIES[p.territory]
    sides = ("left", "right") if p.side == "bilateral" else (p.side,)
    distortion = smooth_noise(rng, anat.shape, 12.0 / anat.resolution_mm)
    severity = np.zeros(anat.shape, dtype=np.float32)
    for side in sides:
        sign = -1.0 if side == "left" else 1.0
        c = np.array([abs(centre[0]) * sign, centre[1], centre[2]]) + np.array(p.centre_jitter_mm)
        r = np.array(radii) * p.radius_scale
        d = np.sqrt(sum(((xyz[i] - c[i]) / r[i]) ** 2 for i in range(3)))
        d = d * (1.0 + 0.12 * distortion)
        hemisphere = (xyz[0] * sign) > 1.0
        # Good collaterals keep the periphery milder; poor ones leave a severe, wide lesion.
        s = np.clip(1.0 - d, 0, 1) ** (0.4 + 0.5 * p.collateral) * (1.2 - 0.45 * p.collateral)
        severity = np.maximum(severity, np.where(hemisphere, s, 0).astype(np.float32))
    severity = severity + 0.06 * smooth_noise(rng, anat.shape, 6.0 / anat.resolution_mm) * (severity > 0)
    severity = np.clip(severity * p.severity_scale, 0, 1) * anat.brain
    return severity.astype(np.float32)


def simulate_lesion(anat: Anatomy, p: LesionParams, rng: np.random.Generator) -> LesionMaps:
    s = severity_map(anat, p, rng)
    gm_frac = anat.gm / np.maximum(anat.gm + anat.wm, 1e-3)

    # Perfusion. Central volume theorem: MTT = CBV / CBF (x60 for s with CBF per minute).
    # Collaterals keep flow (CBF) and volume (CBV) up for the same delay (Tmax): good
    # collaterals deliver late but enough blood. This makes them visible in the maps.
    cbf_rel = np.clip(1.0 - 0.92 * np.power(s, 1.3) * (1.3 - 0.6 * p.collateral), 0.03, 1.0)
    cbv_rel = 1.0 + (0.15 + 0.6 * p.collateral) * s - 1.25 * np.power(s, 2.5)  # autoregulatory rise, then collapse
    cbf = _mix(anat, CBF_ML_100G_MIN) * cbf_rel
    cbv = _mix(anat, CBV_ML_100G) * np.clip(cbv_rel, 0.05, None)
    mtt = np.where(cbf > 0.5, 60.0 * cbv / np.maximum(cbf, 1e-3), 0.0)
    mtt = np.clip(mtt, 0, 30.0) * anat.brain
    tmax = tmax_from_severity(s) * anat.brain

    # Core: tissue whose severity passed a threshold that falls with time since onset;
    # grey matter is more vulnerable (lower threshold) than white matter.
    hours = max(p.onset_to_imaging_h, 0.5)
    threshold = 0.72 - 0.08 * np.log(hours / 3.0) - 0.06 * gm_frac
    threshold = threshold + 0.05 * smooth_noise(rng, anat.shape, 5.0 / anat.resolution_mm)
    threshold = np.clip(threshold, 0.45, 0.97)
    core_depth = np.clip((s - threshold) / np.maximum(1.0 - threshold, 1e-3), 0, 1)
    core = (s > threshold) & anat.brain & (anat.csf < 0.6)
    core_depth = np.where(core, core_depth, 0).astype(np.float32)

    # Final infarct. Hypoperfused tissue dies by a non-linear function of its CBF deficit
    # (which carries the collaterals) and tissue type; reperfusion salvages most of it.
    r = float(np.clip(p.reperfusion_fraction, 0, 1))
    deficit = np.clip(1.0 - cbf_rel, 0, 1)
    risk = np.power(deficit, 0.6) + 0.10 * gm_frac
    # Salvage grows faster than linearly with reperfusion: partial reperfusion saves less.
    risk = risk * (1.0 - 0.85 * r**1.2) * (s > 0.05)
    risk = risk + 0.09 * smooth_noise(rng, anat.shape, 4.0 / anat.resolution_mm)
    penumbra_dies = risk > 0.5
    core_survives = rng.random(anat.shape) < 0.02  # rare core reversal
    final = ((core & ~core_survives) | penumbra_dies) & anat.brain & (anat.csf < 0.6)

    if p.guaranteed_infarct_ml > 0:
        k = int(np.ceil(p.guaranteed_infarct_ml / (anat.resolution_mm**3 / 1000.0)))
        eligible = np.where(anat.brain & (anat.csf < 0.6), s, -1.0).ravel()
        extra = np.zeros(anat.shape, dtype=bool)
        extra.flat[np.argsort(eligible, kind="stable")[-k:]] = True
        core_depth = np.where(extra & ~core, 0.5, core_depth).astype(np.float32)
        core = core | extra
        final = final | extra

    # Diffusion: ADC falls with core depth; the shallow core stays above 620 x 10^-6 mm^2/s,
    # so the clinical threshold misses part of it, as in real patients.
    adc = _mix(anat, ADC_UM2_PER_S)
    adc = adc * (1.0 - 0.05 * s) * np.where(core, 1.0 - (0.20 + 0.36 * core_depth), 1.0)
    b0 = _mix(anat, B0_SIGNAL) * np.where(core, 1.0 + 0.12 * core_depth, 1.0)

    flair = _mix(anat, FLAIR_SIGNAL)
    flair = np.where(final, np.maximum(flair, 1.0) * 1.55, flair)

    return LesionMaps(
        severity=s,
        core=core,
        core_depth=core_depth,
        final_infarct=final,
        tmax_s=tmax.astype(np.float32),
        mtt_s=mtt.astype(np.float32),
        cbf=(cbf * anat.brain).astype(np.float32),
        cbv=(cbv * anat.brain).astype(np.float32),
        adc_um2_per_s=(adc * anat.brain).astype(np.float32),
        b0=(b0 * anat.brain).astype(np.float32),
        flair=(flair * anat.brain).astype(np.float32),
    )


def followup_severity(
    severity: np.ndarray, target_rate_percent: float, voxel_ml: float, tmax_threshold_s: float = 6.0
) -> tuple[np.ndarray, float]:
    """Scale the severity so that the Tmax > 6 s volume falls by ``target_rate_percent``.

    Returns the 4-24 h severity and the rate achieved on the MNI grid. Bisection on a
    scale factor k (k > 1 lets a minimal-reperfusion lesion grow).
    """
    def volume(k: float) -> float:
        return float((tmax_from_severity(np.clip(severity * k, 0, 1)) > tmax_threshold_s).sum()) * voxel_ml

    base = volume(1.0)
    if base == 0:
        return severity.copy(), float("nan")
    goal = base * (1.0 - target_rate_percent / 100.0)
    if goal <= 0:
        return np.zeros_like(severity), 100.0
    lo, hi = 0.0, 3.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if volume(mid) < goal:
            lo = mid
        else:
            hi = mid
    k = hi
    achieved = 100.0 * (1.0 - volume(k) / base)
    return np.clip(severity * k, 0, 1).astype(np.float32), achieved
