"""Perfusion maps from the flow-scaled residue ``b(t) = CBF * R(t)`` (central volume principle).

- CBF = kH / rho * max_t b(t)                      (Ostergaard 1996)
- CBV = kH / rho * integral C(t) dt / integral AIF(t) dt   (Rosen 1990)
- MTT = CBV / CBF                                  (Stewart 1894; Meier & Zierler 1954)
- Tmax = argmax_t b(t), with sub-frame parabolic interpolation
- TTP = argmax_t C(t), with the same interpolation, from the first steady-state frame

kH = (1 - Hct_large) / (1 - Hct_small) = 0.73 corrects for the lower haematocrit of
capillaries, rho = 1.04 g/mL turns volume into mass (Rempp et al., Radiology 1994).
"""

from __future__ import annotations

import numpy as np

from tissuefate.config import section_defaults

_DEFAULTS = section_defaults("perfusion")

MAP_UNITS = {
    "CBF": "mL/100g/min",
    "CBV": "mL/100g",
    "MTT": "s",
    "Tmax": "s",
    "TTP": "s",
}


def peak_time(curves: np.ndarray, dt: float, circular: bool) -> np.ndarray:
    """Time of each column's maximum, refined by the vertex of the parabola through the
    maximum and its two neighbours (wrapping around for a circulant residue)."""
    n = curves.shape[0]
    idx = np.argmax(curves, axis=0)
    cols = np.arange(curves.shape[1])
    if circular:
        prev, nxt = curves[(idx - 1) % n, cols], curves[(idx + 1) % n, cols]
    else:
        prev = curves[np.clip(idx - 1, 0, n - 1), cols]
        nxt = curves[np.clip(idx + 1, 0, n - 1), cols]
    peak = curves[idx, cols]
    denom = prev - 2.0 * peak + nxt
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom < 0, 0.5 * (prev - nxt) / denom, 0.0)
    if not circular:
        shift = np.where((idx == 0) | (idx == n - 1), 0.0, shift)
    shift = np.clip(shift, -0.5, 0.5)
    t = (idx + shift) * dt
    if circular:
        # The second half of the circulant residue is tissue that arrives before the AIF.
        t = np.where(idx + shift > n / 2, t - n * dt, t)
    return t


def perfusion_maps(
    residue: np.ndarray,
    tissue: np.ndarray,
    aif: np.ndarray,
    dt: float,
    *,
    circular: bool,
    kh: float = _DEFAULTS["kh"],
    rho_g_per_ml: float = _DEFAULTS["rho_g_per_ml"],
) -> dict[str, np.ndarray]:
    """CBF, CBV, MTT, Tmax, TTP of every voxel (columns of ``residue`` and ``tissue``).

    Non-finite or negative values are set explicitly: CBF and CBV below 0 become 0 (noise
    around zero flow), MTT is 0 where CBF is 0, Tmax below 0 (tissue before the AIF) is 0.
    """
    scale = kh / rho_g_per_ml * 100.0  # per 100 g of tissue
    cbf = scale * 60.0 * residue.max(axis=0)  # 1/s -> 1/min
    aif_area = np.trapezoid(aif, dx=dt)
    cbv = scale * np.trapezoid(tissue, dx=dt, axis=0) / aif_area
    cbf = np.where(np.isfinite(cbf), np.clip(cbf, 0, None), 0.0)
    cbv = np.where(np.isfinite(cbv), np.clip(cbv, 0, None), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt = np.where(cbf > 0, 60.0 * cbv / cbf, 0.0)
    tmax = np.clip(peak_time(residue, dt, circular), 0.0, None)
    ttp = peak_time(tissue, dt, circular=False)
    maps = {"CBF": cbf, "CBV": cbv, "MTT": mtt, "Tmax": tmax, "TTP": ttp}
    return {k: np.where(np.isfinite(v), v, 0.0) for k, v in maps.items()}
