"""Raw dynamic susceptibility contrast (DSC) series from the true perfusion maps.

Indicator dilution (Ostergaard et al. 1996; equations in docs/simulation.md), per voxel:

    C_a(t)  = gamma variate (+ a small recirculation), in units of Delta R2* (1/s)
    C_t(t)  = q F [C_a(. - delta) (x) h (x) R](t),   F = CBF / 6000 (1/s), R(t) = exp(-t / MTT),
              h(t) = exp(-t / beta) / beta (dispersion), MTT = 60 CBV / CBF (s),
              q = r (rho / kH): tissue Delta R2* per unit contrast agent is r = 4 times the
              arterial voxel's (the measured AIF), and the haematocrit/density convention of the
              perfusion stage (Rempp et al. 1994: CBV = kH/rho x integral C_t / integral C_a)
    S(t)    = S0 exp(-TE C(t))

so that kH/rho times the integral of C_t over that of C_a is r CBV / 100 exactly. Convolutions are
exact-area recursive exponential filters on a time grid of TR / 8, computed once per study
for a table over (MTT, Tmax) and interpolated bilinearly per voxel (exact in the integral).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tissuefate.perfusion.job import DEFAULTS as PERFUSION_DEFAULTS

# Per site: echo time (s), repetition time (s), frames, bolus arrival (s), noise (fraction of S0).
DSC_PROTOCOLS = {
    "siteA": dict(te_s=0.030, tr_s=1.5, n_frames=60, flip_angle_deg=60.0, noise=0.012),
    "siteB": dict(te_s=0.045, tr_s=1.8, n_frames=50, flip_angle_deg=90.0, noise=0.018),
    "siteC": dict(te_s=0.032, tr_s=1.25, n_frames=80, flip_angle_deg=60.0, noise=0.010),
}
AIF_ALPHA, AIF_BETA_S = 3.0, 1.5  # gamma-variate shape (Rempp et al. 1994 style)
AIF_PEAK_R2STAR = 60.0  # 1/s at the AIF voxel
RECIRCULATION = (0.12, 8.0, 3.0)  # relative amount, delay (s), beta (s) of the second pass
S0_BRAIN = 1000.0
FIRST_FRAME_FACTOR = 1.6  # the first frame is not at steady state (no T1 saturation yet)
SUBSTEPS = 8
# Tissue Delta R2* per unit contrast agent relative to the arterial (AIF) voxel. With one
# relaxivity for both, grey matter dropped ~5 % at the bolus instead of the 20-40 % of patients
# and its CNR (~3) buried Tmax in noise; in vivo the two differ (Kiselev, MRM 2001;46:1113) and
# a linear one-relaxivity analysis overestimates CBV and CBF about 4-fold (Jochimsen et al.,
# NMR Biomed 2007;20:429). docs/simulation.md, "Raw DSC perfusion".
TISSUE_RELAXIVITY_RATIO = 4.0
# The perfusion stage's haematocrit and density constants (docs/perfusion.md), not copies of them.
KH, RHO_G_PER_ML = PERFUSION_DEFAULTS["kh"], PERFUSION_DEFAULTS["rho_g_per_ml"]
TISSUE_SCALE = TISSUE_RELAXIVITY_RATIO * RHO_G_PER_ML / KH


@dataclass
class DscSeries:
    signal: np.ndarray  # (X, Y, Z, T) float32 (written as int16)
    sidecar: dict


@dataclass
class DscTruth:
    maps: dict[str, np.ndarray]  # CBF, CBV, MTT, delay, dispersion, Tmax
    aif: dict  # location and curve


def gamma_variate(t: np.ndarray, t0: float | np.ndarray, alpha: float = AIF_ALPHA, beta: float = AIF_BETA_S) -> np.ndarray:
    """Unit-peak gamma variate starting at t0."""
    x = np.clip((t - t0) / (alpha * beta), 0, None)
    return np.where(t > t0, np.power(x, alpha) * np.exp(alpha * (1.0 - x)), 0.0)


def arterial_input(t: np.ndarray, t0: float | np.ndarray) -> np.ndarray:
    """Delta R2* (1/s) of pure arterial blood: first pass and a dispersed recirculation."""
    amount, delay, beta = RECIRCULATION
    first = gamma_variate(t, t0)
    second = gamma_variate(t, t0 + delay, AIF_ALPHA, beta) * amount * AIF_BETA_S / beta
    return AIF_PEAK_R2STAR * (first + second)


def residue_peak_time(mtt_s: np.ndarray, dispersion_s: np.ndarray) -> np.ndarray:
    """Time of the maximum of (h (x) R)(t) for exponential h (mean beta) and R (mean MTT)."""
    m = np.maximum(mtt_s, 1e-3)
    b = np.maximum(dispersion_s, 1e-3)
    same = np.abs(m - b) < 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        t = b * m * np.log(m / b) / (m - b)
    return np.where(same, m, t)


def delay_and_dispersion(tmax_s: np.ndarray, mtt_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each voxel's Tmax into a bolus delay and a dispersion that grows with it
    (beta = 0.2 s + 0.25 (Tmax - 0.4 s); Calamante et al. 2004), so delta + t* = Tmax."""
    dispersion = 0.2 + 0.25 * np.clip(tmax_s - 0.4, 0, None)
    delay = np.clip(tmax_s - residue_peak_time(mtt_s, dispersion), 0, None)
    return delay.astype(np.float32), dispersion.astype(np.float32)


def tissue_curves(t: np.ndarray, t0: float, cbf: np.ndarray, mtt: np.ndarray, delay: np.ndarray,
                  dispersion: np.ndarray) -> np.ndarray:
    """Delta R2* (1/s) of N voxels on the fine grid ``t`` (uniform), shape (N, len(t))."""
    dt = float(t[1] - t[0])
    fine = np.arange(-1, 4 * t.size + 1) * (dt / 4)  # the AIF once, then shifted per voxel
    x = np.interp((t[None, :] - delay[:, None]).ravel(), fine, arterial_input(fine, t0)).reshape(delay.size, t.size)
    a_h = np.exp(-dt / np.maximum(dispersion, 1e-3))[:, None]
    a_r = np.exp(-dt / np.maximum(mtt, 1e-3))[:, None]
    gain_r = (np.maximum(mtt, 1e-3)[:, None]) * (1.0 - a_r)
    out = np.empty_like(x)
    y = np.zeros((x.shape[0], 1))
    z = np.zeros((x.shape[0], 1))
    for n in range(x.shape[1]):
        y = a_h * y + (1.0 - a_h) * x[:, n:n + 1]  # dispersion: unit area
        z = a_r * z + gain_r * y  # residue: area MTT
        out[:, n:n + 1] = z
    return out * (cbf / 6000.0)[:, None]


MTT_GRID_S = np.concatenate([np.linspace(0.25, 4.0, 16)[:-1], np.geomspace(4.0, 30.0, 24)])
TMAX_GRID_S = np.linspace(0.0, 30.0, 61)


def tissue_curves_lut(tr: float, n_frames: int, t0: float, cbf: np.ndarray, mtt: np.ndarray,
                      tmax: np.ndarray) -> np.ndarray:
    """``tissue_curves`` at the frame times through a table over (MTT, Tmax), bilinear.

    A curve per unit CBF is linear in MTT in its area and independent of Tmax, so the
    interpolation keeps the integral (CBV) exact; the table costs 5000 curves, not one per voxel.
    """
    t_fine = np.arange(n_frames * SUBSTEPS) * (tr / SUBSTEPS)
    mm, tt = np.meshgrid(MTT_GRID_S, TMAX_GRID_S, indexing="ij")
    delay, dispersion = delay_and_dispersion(tt.ravel(), mm.ravel())
    table = tissue_curves(t_fine, t0, np.full(mm.size, 6000.0), mm.ravel(), delay, dispersion)[:, ::SUBSTEPS]
    table = table.reshape(mm.shape + (n_frames,))
    m = np.clip(mtt, MTT_GRID_S[0], MTT_GRID_S[-1])
    i = np.clip(np.searchsorted(MTT_GRID_S, m) - 1, 0, len(MTT_GRID_S) - 2)
    wi = ((m - MTT_GRID_S[i]) / (MTT_GRID_S[i + 1] - MTT_GRID_S[i]))[:, None]
    x = np.clip(tmax, TMAX_GRID_S[0], TMAX_GRID_S[-1])
    j = np.clip(np.searchsorted(TMAX_GRID_S, x) - 1, 0, len(TMAX_GRID_S) - 2)
    wj = ((x - TMAX_GRID_S[j]) / (TMAX_GRID_S[j + 1] - TMAX_GRID_S[j]))[:, None]
    curves = ((1 - wi) * (1 - wj) * table[i, j] + wi * (1 - wj) * table[i + 1, j]
              + (1 - wi) * wj * table[i, j + 1] + wi * wj * table[i + 1, j + 1])
    return (curves * (cbf / 6000.0)[:, None]).astype(np.float32)


def aif_location(coords: np.ndarray, brain: np.ndarray, side: str, n: int = 4) -> np.ndarray:
    """Voxels (flat indices) nearest the contralateral middle cerebral artery (MNI +-30, 0, -8 mm)."""
    x = 30.0 if side == "left" else -30.0
    target = np.array([x, 0.0, -8.0])
    d = np.linalg.norm(coords.reshape(3, -1) - target[:, None], axis=0)
    d[~brain.ravel()] = np.inf
    return np.argsort(d, kind="stable")[:n]


def simulate_dsc(maps: dict[str, np.ndarray], coords: np.ndarray, site, rng: np.random.Generator,
                 poor: bool = False, lesion_side: str = "left", noise: bool = True) -> tuple[DscSeries, DscTruth]:
    """The raw DSC series of a perfusion slab from its true maps (Tmax, MTT, CBF, CBV, brain)."""
    proto = DSC_PROTOCOLS[site.name]
    te, tr, n_frames = proto["te_s"], proto["tr_s"], proto["n_frames"]
    brain = maps["brain"] > 0.5
    shape = brain.shape
    cbf = np.where(brain, maps["CBF"], 0.0).astype(np.float64)
    cbv = np.where(brain, maps["CBV"], 0.0).astype(np.float64)
    mtt = np.where(cbf > 0.5, 60.0 * cbv / np.maximum(cbf, 1e-3), 1.0)
    tmax = np.where(brain, maps["Tmax"], 0.0)
    delay, dispersion = delay_and_dispersion(tmax, mtt)
    t0 = float(rng.uniform(8.0, 14.0))
    idx = np.flatnonzero(brain)
    r2 = TISSUE_SCALE * tissue_curves_lut(tr, n_frames, t0, cbf.ravel()[idx], mtt.ravel()[idx], tmax.ravel()[idx])
    aif_idx = aif_location(coords, brain, lesion_side)
    frames_t = np.arange(n_frames) * tr
    aif_curve = arterial_input(frames_t, t0)
    r2[np.searchsorted(idx, aif_idx)] = aif_curve
    s0 = S0_BRAIN * site.intensity_scale
    signal = (s0 * np.exp(-te * r2)).astype(np.float32)
    signal[:, 0] *= FIRST_FRAME_FACTOR
    if noise:
        sd = proto["noise"] * s0 * (8.0 if poor else 1.0)
        real = signal + rng.normal(0, sd, signal.shape).astype(np.float32)
        imag = rng.normal(0, sd, signal.shape).astype(np.float32)
        signal = np.sqrt(real * real + imag * imag)
    series = np.zeros((brain.size, n_frames), dtype=np.float32)
    series[idx] = signal
    series = series.reshape(shape + (n_frames,))
    sidecar = {
        "RepetitionTime": tr,
        "EchoTime": te,
        "FlipAngle": proto["flip_angle_deg"],
        "ContrastBolusIngredient": "GADOLINIUM",
        "PulseSequenceType": "Gradient Echo EPI",
        "NumberOfVolumesDiscardedByScanner": 0,
        "Description": "Raw DSC series (simulated); the first frame is not at steady state",
    }
    true_tmax = np.where(brain, delay + residue_peak_time(mtt, dispersion), 0.0)
    truth = DscTruth(
        maps={"CBF": cbf.astype(np.float32), "CBV": cbv.astype(np.float32),
              "MTT": np.where(brain, mtt, 0).astype(np.float32), "delay": np.where(brain, delay, 0).astype(np.float32),
              "dispersion": np.where(brain, dispersion, 0).astype(np.float32), "Tmax": true_tmax.astype(np.float32)},
        aif={
            "voxels_ijk": [list(map(int, np.unravel_index(i, shape))) for i in aif_idx],
            "mni_mm": [[round(float(v), 2) for v in coords.reshape(3, -1)[:, i]] for i in aif_idx],
            "bolus_arrival_s": t0,
            "frame_times_s": frames_t.round(4).tolist(),
            "delta_r2star_per_s": aif_curve.round(6).tolist(),
            "S0": float(S0_BRAIN * site.intensity_scale),
            "first_frame_factor": FIRST_FRAME_FACTOR,
            "tissue_relaxivity_ratio": TISSUE_RELAXIVITY_RATIO,
            "tissue_scale": round(TISSUE_SCALE, 6),
            "EchoTime": te,
            "RepetitionTime": tr,
        },
    )
    return DscSeries(series, sidecar), truth
