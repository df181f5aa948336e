"""The lesion model, in MNI space (equations and sources in docs/simulation.md).

The baseline DWI lesion is a real acute lesion of the SOOP library (mirrored or not,
lightly deformed). The occluded artery's territory (JHU atlas) holds the hypoperfusion:
a severity s in [0, 1] that falls with distance from the lesion, irregular, deeper with
poor collaterals, scaled to the patient's Tmax > 6 s volume. The final infarct is the
lesion (less DWI reversal after major reperfusion) plus the hypoperfused tissue that
dies before reperfusion: it grows from the lesion along a death score with its own
noise, so it leaves part of Tmax > 6 s alive (benign oligaemia) and takes tissue
outside it (growth beyond the baseline Tmax > 6 s region).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from tissuefate.config import section_defaults
from tissuefate.simulation.anatomy import Anatomy, smooth_noise
from tissuefate.simulation.library import artery_labels, load_atlas_2mm, load_library, sample_2mm

# Normal tissue values (GM, WM, CSF) for mixing by partial volume.
CBF_ML_100G_MIN = (58.0, 22.0, 0.0)
CBV_ML_100G = (4.2, 2.0, 0.0)
ADC_UM2_PER_S = (820.0, 720.0, 3000.0)
B0_SIGNAL = (620.0, 480.0, 1500.0)
FLAIR_SIGNAL = (1.0, 0.78, 0.18)
TMAX_NORMAL_S = 0.4
SEVERITY_AT_6S = float((5.6 / 23.6) ** 0.8)  # tmax_from_severity(SEVERITY_AT_6S) == 6 s
# Complete reperfusion before imaging: a mild delay up to this severity (Tmax 4.4 s), so that no
# voxel reaches Tmax 6 s even in the vendor-style maps (noise sd 0.25 s: 6 sd below 6 s).
# At 0.29 (Tmax 5.4 s) the map noise put a 0.06 mL Tmax > 6 s speck in a demo patient meant to
# be excluded, and the pipeline rightly included it.
SUBTHRESHOLD_SEVERITY = 0.24

LESION_DEFORMATION_SIGMA_MM = 15.0
HYPOPERFUSION_LENGTH_MM = 15.0  # lambda: distance from the lesion per unit of perfusion score
HYPOPERFUSION_NOISE = 1.0  # a: amplitude of the perfusion score's smooth noise (sigma 8 mm)
DEATH_LENGTH_MM = 12.0  # lambda_F of the death score
DEATH_NOISE = 1.6  # b: amplitude of the death score's own smooth noise (sigma 6 mm)
DEATH_GM_BONUS = 0.5  # grey matter dies first
REVERSAL_NOISE = 0.5  # of the reversal score -depth + noise
# The lesion's ADC: ADC0 (1 - adc_drop (ADC_RIM_DROP + ADC_DEPTH_DROP depth)).
ADC_RIM_DROP = 0.18
ADC_DEPTH_DROP = 0.38
# The final infarct as a rater traces it on the day-3-7 FLAIR: the true outline moved by a smooth
# random displacement (RMS per axis, correlation length), its volume kept. The RMS is set so that
# two independent tracings agree at the inter-rater Dice of real infarct tracings (mean 0.73;
# docs/simulation.md, "The rater's tracing").
TRACING_RMS_MM = 2.2
TRACING_LENGTH_MM = 10.0
# Optional: the rater's volume also differs, by a factor exp(sd N(0, 1)) per tracing (off by
# default; real inter-rater volume ICCs 0.83-0.98, docs/simulation.md section 7).
TRACING_VOLUME_LOG_SD = 0.0


@dataclass
class LesionParams:
    side: str  # left, right or bilateral (where the simulated lesion lies)
    lesion_index: int  # row of the lesion library, -1 for none (stroke mimic)
    mirrored: bool  # x -> -x applied to the library lesion
    artery: str  # occluded artery (ICA, M1, M2_superior, M2_inferior, ACA, PCA)
    collateral: float  # 0 poor .. 1 good
    tmax6_target_ml: float  # baseline Tmax > 6 s volume (0: complete reperfusion before imaging)
    penumbra_loss: float  # f0: share of Tmax > 6 s tissue outside the lesion that dies without reperfusion
    reperfusion_fraction: float  # r: 0 none .. 1 complete
    reversal_fraction: float  # share of the DWI lesion that recovers (major reperfusion only)
    early_growth: float = 0.0  # share of the penumbra lost before any reperfusion
    adc_drop: float = 1.0  # the lesion's ADC drop relative to the model's (patients differ)
    deformation_mm: float = 2.0


@dataclass
class LesionMaps:
    severity: np.ndarray  # s in [0, 1]
    core: np.ndarray  # bool: the baseline DWI lesion
    core_depth: np.ndarray  # 0..1 inside the core
    final_infarct: np.ndarray  # bool: the tissue that dies
    territory: np.ndarray  # bool: the occluded artery's territory
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
    """Tmax (s) rises steeply with severity: s = 0.317 gives 6 s, s = 1 gives 24 s."""
    return (TMAX_NORMAL_S + 23.6 * np.power(np.clip(severity, 0, 1), 1.25)).astype(np.float32)


def lesion_source_points(world: np.ndarray, mirrored: bool, displacement: np.ndarray | None) -> np.ndarray:
    """The documented transform: a simulated voxel at x shows the library lesion at m(x) + u(x)."""
    src = world.copy()
    if mirrored:
        src[0] = -src[0]
    if displacement is not None:
        src = src + displacement
    return src


def place_lesion(anat: Anatomy, index: int, mirrored: bool, rng: np.random.Generator,
                 deformation_mm: float) -> np.ndarray:
    """Library lesion ``index`` on the anatomy's grid (bool), mirrored and lightly deformed."""
    mask = load_library().mask_2mm(index).astype(np.float32)
    world = anat.world_coordinates()
    u = smooth_noise(rng, anat.shape, LESION_DEFORMATION_SIGMA_MM / anat.resolution_mm, n=3) * (deformation_mm / np.sqrt(3))
    # Average the 2 mm mask over the coarser voxel before sampling (partial volume).
    sigma = max(anat.resolution_mm / 2.0 - 1.0, 0.0) * 0.5
    smooth = ndimage.gaussian_filter(mask, sigma) if sigma > 0 else mask
    fraction = sample_2mm(smooth, lesion_source_points(world, mirrored, u), order=1)
    lesion = fraction >= 0.5
    if not lesion.any():  # a lesion smaller than one voxel keeps its most covered voxel
        lesion.flat[int(np.argmax(fraction))] = True
    return lesion & anat.brain


@lru_cache(maxsize=4)
def _atlas_on_grid(resolution_mm: float, shape: tuple[int, int, int], affine_bytes: bytes) -> np.ndarray:
    affine = np.frombuffer(affine_bytes).reshape(4, 4)
    ijk = np.indices(shape, dtype=np.float64)
    world = np.einsum("ij,j...->i...", affine[:3, :3], ijk) + affine[:3, 3, None, None, None]
    return sample_2mm(load_atlas_2mm().astype(np.float32), world, order=0).astype(np.int16)


def territory_mask(anat: Anatomy, artery: str, sides: tuple[str, ...]) -> np.ndarray:
    atlas = _atlas_on_grid(anat.resolution_mm, anat.shape, np.ascontiguousarray(anat.affine).tobytes())
    labels = [label for side in sides for label in artery_labels(artery, side)]
    return np.isin(atlas, labels) & anat.brain


def _top_voxels(score: np.ndarray, eligible: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` eligible voxels of highest score (stable for ties)."""
    out = np.zeros(score.shape, dtype=bool)
    idx = np.flatnonzero(eligible)
    n = int(min(max(n, 0), idx.size))
    if n:
        order = np.argsort(-score.ravel()[idx], kind="stable")[:n]
        out.flat[idx[order]] = True
    return out


def lesion_distance(anat: Anatomy, core: np.ndarray) -> np.ndarray:
    """d_lesion: distance (mm) of every voxel from the lesion (0 inside it)."""
    return ndimage.distance_transform_edt(~core, sampling=anat.resolution_mm)


def hypoperfusion_severity(anat: Anatomy, core: np.ndarray, territory: np.ndarray, p: LesionParams,
                           rng: np.random.Generator, d_lesion: np.ndarray | None = None) -> np.ndarray:
    """Severity s: Tmax > 6 s exactly on the ``tmax6_target_ml`` voxels of highest perfusion score

    score = -d_lesion / lambda + a xi - d_territory / 3 mm; s = s6 + k (score - tau),
    k = 0.06 + 0.12 (1 - c): poor collaterals make the hypoperfusion deeper. ``d_lesion``:
    ``lesion_distance(anat, core)`` if already computed.
    """
    res = anat.resolution_mm
    if not core.any():
        d_lesion = np.full(anat.shape, 60.0)
    elif d_lesion is None:
        d_lesion = lesion_distance(anat, core)
    region = territory | ndimage.binary_dilation(core, iterations=1)
    d_territory = ndimage.distance_transform_edt(~region, sampling=res)
    score = -d_lesion / HYPOPERFUSION_LENGTH_MM + HYPOPERFUSION_NOISE * smooth_noise(rng, anat.shape, 8.0 / res)
    score = score - d_territory / 1.0  # steep: a voxel outside the territory is rarely hypoperfused
    voxel_ml = res**3 / 1000.0
    n = int(round(p.tmax6_target_ml / voxel_ml))
    if n <= 0:  # complete reperfusion before imaging: a mild delay only
        s = np.clip(SUBTHRESHOLD_SEVERITY - 0.05 * d_lesion / HYPOPERFUSION_LENGTH_MM - d_territory / 30.0, 0, SUBTHRESHOLD_SEVERITY)
        return (s * anat.brain).astype(np.float32)
    # The lesion is hypoperfused whatever its score: rank it first, so V_T counts it.
    values = np.sort(np.where(core, np.inf, score)[anat.brain])[::-1]
    values = values[np.isfinite(values)]
    n_rest = n - int((core & anat.brain).sum())
    tau = values[0] + 1.0 if n_rest <= 0 else 0.5 * (values[min(n_rest, values.size) - 1] + values[min(n_rest, values.size - 1)])
    k = 0.06 + 0.12 * (1.0 - p.collateral)
    s = np.clip(SEVERITY_AT_6S + k * (score - tau), 0, 1)
    # Graded, never flat, inside the lesion (a flat block would defeat the 4-24 h rate targeting).
    floor = 0.5 + 0.3 * (1.0 - p.collateral) + 0.1 * np.tanh(score - tau)
    s = np.where(core, np.maximum(s, floor), s)
    return (s * anat.brain).astype(np.float32)


def core_depth_map(anat: Anatomy, core: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0 at the lesion's rim, 1 deep inside (6 mm), with smooth noise: it sets the ADC drop."""
    if not core.any():
        return np.zeros(anat.shape, dtype=np.float32)
    # The distance to the nearest non-lesion voxel, on the lesion's box grown by one voxel:
    # that rim is all background, so no voxel outside it is nearer (same values as on the grid).
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in ndimage.find_objects(core.astype(np.uint8))[0])
    inside = np.zeros(anat.shape)
    inside[box] = ndimage.distance_transform_edt(core[box], sampling=anat.resolution_mm)
    depth = (inside - 0.5 * anat.resolution_mm) / 6.0 + 0.45 * smooth_noise(rng, anat.shape, 4.0 / anat.resolution_mm)
    return np.where(core, np.clip(depth, 0, 1), 0).astype(np.float32)


def final_infarct(anat: Anatomy, core: np.ndarray, depth: np.ndarray, s: np.ndarray, territory: np.ndarray,
                  p: LesionParams, rng: np.random.Generator, d_lesion: np.ndarray | None = None) -> np.ndarray:
    """(core less DWI reversal) union the top-n voxels of the death score in the territory.

    n = [g + (f0 - g)(1 - r^1.5)] |Tmax > 6 s \\ core|; death score = -d_lesion / lambda_F + b xi' + 0.5 f_GM.
    ``d_lesion``: ``lesion_distance(anat, core)`` if already computed.
    """
    res = anat.resolution_mm
    tissue = anat.tissue
    n_reversed = int(round(p.reversal_fraction * core.sum()))
    # The shallower part of the lesion recovers, but ADC predicts reversal only loosely.
    reversal_score = -depth + REVERSAL_NOISE * smooth_noise(rng, anat.shape, 4.0 / res)
    reversed_ = _top_voxels(reversal_score, core, n_reversed)
    survivors = core & ~reversed_
    penumbra = (tmax_from_severity(s) > 6.0) & ~core
    # Before reperfusion the core grows (imaging-to-reperfusion time); afterwards only
    # unreperfused tissue keeps dying.
    loss = p.early_growth + (p.penumbra_loss - p.early_growth) * (1.0 - p.reperfusion_fraction**1.5)
    n_die = int(round(max(loss, 0.0) * penumbra.sum()))
    if n_die == 0 or not core.any():
        return survivors & tissue
    if d_lesion is None:
        d_lesion = lesion_distance(anat, core)
    gm = anat.gm / np.maximum(anat.gm + anat.wm, 1e-3)
    death = -d_lesion / DEATH_LENGTH_MM + DEATH_NOISE * smooth_noise(rng, anat.shape, 6.0 / res) + DEATH_GM_BONUS * gm
    eligible = (territory | penumbra) & tissue & ~core
    return (survivors | _top_voxels(death, eligible, n_die)) & tissue


def traced_outline(anat: Anatomy, final: np.ndarray, rng: np.random.Generator,
                   rms_mm: float | None = None) -> np.ndarray:
    """The final infarct as a rater traces it: the true outline displaced, the volume kept.

    The signed distance to the true outline (mm, > 0 inside) is resampled through a smooth random
    displacement field u (unit-sd Gaussian fields smoothed over TRACING_LENGTH_MM, scaled to
    ``rms_mm`` per axis; TRACING_RMS_MM by default); the traced mask is the tissue voxels of highest
    displaced distance, as many as the true infarct holds (times exp(TRACING_VOLUME_LOG_SD N(0, 1))
    when that is > 0). ``rng`` is the tracing's own stream, so no other draw of the patient moves.
    """
    rms = TRACING_RMS_MM if rms_mm is None else float(rms_mm)
    n = int(final.sum())
    if rms <= 0 or n == 0:
        return final.copy()
    res = anat.resolution_mm
    shift = smooth_noise(rng, anat.shape, TRACING_LENGTH_MM / res, n=3) * np.float32(rms / res)
    if TRACING_VOLUME_LOG_SD > 0:  # drawn after the field, so the default tracing is unchanged
        n = max(int(round(n * np.exp(TRACING_VOLUME_LOG_SD * rng.standard_normal()))), 1)
    # Only a box around the infarct can be reached: |u| beyond 4 RMS is out of reach in practice.
    margin = int(np.ceil(4 * rms / res)) + 2
    found = ndimage.find_objects(final.astype(np.uint8))[0]
    box = tuple(slice(max(s.start - margin, 0), min(s.stop + margin, dim)) for s, dim in zip(found, anat.shape))
    inside = final[box]
    signed = ndimage.distance_transform_edt(inside, sampling=res) - ndimage.distance_transform_edt(~inside, sampling=res)
    coords = np.indices(inside.shape, dtype=np.float32) + shift[(slice(None),) + box]
    score = np.full(anat.shape, -np.inf, dtype=np.float32)
    score[box] = ndimage.map_coordinates(signed.astype(np.float32), coords, order=1, mode="nearest")
    return _top_voxels(score, anat.tissue & np.isfinite(score), n)


def perfusion_maps(anat: Anatomy, s: np.ndarray, collateral: float) -> dict[str, np.ndarray]:
    """CBF, CBV, MTT (central volume theorem) and Tmax from the severity."""
    cbf_rel = np.clip(1.0 - 0.92 * np.power(s, 1.3) * (1.3 - 0.6 * collateral), 0.03, 1.0)
    cbv_rel = 1.0 + (0.15 + 0.6 * collateral) * s - 1.25 * np.power(s, 2.5)  # autoregulatory rise, then collapse
    cbf = _mix(anat, CBF_ML_100G_MIN) * cbf_rel * anat.brain
    cbv = _mix(anat, CBV_ML_100G) * np.clip(cbv_rel, 0.05, None) * anat.brain
    mtt = np.where(cbf > 0.5, 60.0 * cbv / np.maximum(cbf, 1e-3), 0.0)
    return {
        "cbf": cbf.astype(np.float32),
        "cbv": cbv.astype(np.float32),
        "mtt": (np.clip(mtt, 0, 30.0) * anat.brain).astype(np.float32),
        "tmax": (tmax_from_severity(s) * anat.brain).astype(np.float32),
    }


def place_core(anat: Anatomy, p: LesionParams, rng: np.random.Generator) -> np.ndarray:
    if p.lesion_index < 0:
        return np.zeros(anat.shape, dtype=bool)
    core = place_lesion(anat, p.lesion_index, p.mirrored, rng, p.deformation_mm)
    if p.side == "bilateral":
        core |= place_lesion(anat, p.lesion_index, not p.mirrored, rng, p.deformation_mm)
    return core


def simulate_lesion(anat: Anatomy, p: LesionParams, rng: np.random.Generator) -> LesionMaps:
    core = place_core(anat, p, rng)
    sides = ("left", "right") if p.side == "bilateral" else (p.side,)
    territory = territory_mask(anat, p.artery, sides)
    d_lesion = lesion_distance(anat, core) if core.any() else None  # used twice below
    if p.lesion_index < 0:  # a stroke mimic: no occlusion
        s = np.zeros(anat.shape, dtype=np.float32)
    else:
        s = hypoperfusion_severity(anat, core, territory, p, rng, d_lesion)
    depth = core_depth_map(anat, core, rng)
    final = final_infarct(anat, core, depth, s, territory, p, rng, d_lesion)
    perf = perfusion_maps(anat, s, p.collateral)
    # Diffusion: the ADC drop deepens from the lesion's rim inwards, so ADC < 620 misses the rim.
    lesion_drop = p.adc_drop * (ADC_RIM_DROP + ADC_DEPTH_DROP * depth)
    adc = _mix(anat, ADC_UM2_PER_S) * (1.0 - 0.05 * s) * np.where(core, 1.0 - lesion_drop, 1.0)
    b0 = _mix(anat, B0_SIGNAL) * np.where(core, 1.0 + 0.12 * depth, 1.0)
    flair = _mix(anat, FLAIR_SIGNAL)
    flair = np.where(final, np.maximum(flair, 1.0) * 1.55, flair)
    return LesionMaps(
        severity=s, core=core, core_depth=depth, final_infarct=final, territory=territory,
        tmax_s=perf["tmax"], mtt_s=perf["mtt"], cbf=perf["cbf"], cbv=perf["cbv"],
        adc_um2_per_s=(adc * anat.brain).astype(np.float32),
        b0=(b0 * anat.brain).astype(np.float32),
        flair=(flair * anat.brain).astype(np.float32),
    )


def followup_severity(
    severity: np.ndarray, target_rate_percent: float, voxel_ml: float,
    tmax_threshold_s: float = section_defaults("cohort")["tmax_threshold_s"],
) -> tuple[np.ndarray, float]:
    """Scale the severity so that the Tmax > 6 s volume falls by ``target_rate_percent``.

    Returns the 4-24 h severity and the rate achieved on the MNI grid. Bisection on a
    scale factor k (k > 1 lets a minimal-reperfusion lesion grow).
    """
    # A voxel of severity <= 0 stays at severity 0 for every k >= 0: count those once, and
    # scale only the others (the same per-voxel arithmetic on fewer voxels).
    positive = severity[severity > 0]
    n_rest = (severity.size - positive.size) * int(tmax_from_severity(np.zeros(1, dtype=severity.dtype))[0] > tmax_threshold_s)

    def volume(k: float) -> float:
        return float((tmax_from_severity(np.clip(positive * k, 0, 1)) > tmax_threshold_s).sum() + n_rest) * voxel_ml

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
