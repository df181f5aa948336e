"""ADC units: scanners store ADC in 10^-6 mm^2/s (= um^2/s) or 10^-3 mm^2/s, some in mm^2/s.

The ADC < 620 x 10^-6 mm^2/s threshold is meaningless until the unit is known, so the unit
is read from the sidecar ("Units"), or detected from the brain's median ADC when the
config says ``adc_unit: auto``, or given explicitly in the config.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tissuefate.errors import InputError

# Factor that converts a stored value into 10^-6 mm^2/s (um^2/s).
_UNIT_FACTORS = {
    "1e-6 mm2/s": 1.0,
    "1e-3 mm2/s": 1000.0,
    "mm2/s": 1e6,
    "um2/s": 1.0,
}

# Normal brain parenchyma ADC is about 700-900 x 10^-6 mm^2/s; CSF about 3000.
# A median brain value inside this range pins the unit; anything else is ambiguous.
_BRAIN_MEDIAN_UM2_PER_S = (300.0, 2000.0)


def _normalise_unit(text: str) -> str:
    t = text.strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")
    t = t.replace("^", "").replace("**", "").replace("²", "2").replace("x", "")
    t = re.sub(r"10-(\d)", r"1e-\1", t)
    t = t.replace("mm2s-1", "mm2/s").replace("um2s-1", "um2/s")
    t = re.sub(r"^(1e-\d)(mm2/s)$", r"\1 \2", t)
    return t


def adc_factor_from_units(units: str) -> float:
    """Factor from a declared unit string (e.g. "10^-6 mm^2/s", "um2/s") to 10^-6 mm^2/s."""
    key = _normalise_unit(units)
    if key not in _UNIT_FACTORS:
        raise ValueError(f"unknown ADC unit {units!r}")
    return _UNIT_FACTORS[key]


def detect_adc_factor(adc: np.ndarray, brain_mask: np.ndarray | None = None) -> float | None:
    """Guess the factor to 10^-6 mm^2/s from the median ADC of the brain; None if ambiguous."""
    values = adc[brain_mask > 0] if brain_mask is not None else adc
    values = values[values > 0]
    if values.size == 0:
        return None
    median = float(np.median(values))
    low, high = _BRAIN_MEDIAN_UM2_PER_S
    matches = [f for f in sorted(set(_UNIT_FACTORS.values())) if low <= median * f <= high]
    return matches[0] if len(matches) == 1 else None


def resolve_adc_factor(
    adc: np.ndarray,
    sidecar: dict,
    policy: str,
    *,
    participant: str | None,
    path: str | Path,
    brain_mask: np.ndarray | None = None,
) -> tuple[float, str]:
    """Factor to 10^-6 mm^2/s and how it was found ("sidecar", "detected" or "config").

    ``policy``: "sidecar" (the sidecar must declare "Units"), "auto" (use the sidecar if it
    declares, else detect), or an explicit unit string that overrides both.
    """
    fix = (
        'declare the unit in the sidecar, e.g. "Units": "10^-6 mm^2/s" or "10^-3 mm^2/s", '
        "or set preprocessing.adc_unit to auto (detect) or to the unit in the config"
    )
    if policy not in ("sidecar", "auto"):
        return adc_factor_from_units(policy), "config"
    declared = sidecar.get("Units")
    if declared:
        try:
            factor = adc_factor_from_units(str(declared))
        except ValueError:
            raise InputError(f"the ADC unit {declared!r} is not recognised", participant=participant, path=path, fix=fix) from None
        detected = detect_adc_factor(adc, brain_mask)
        if detected is not None and detected != factor:
            raise InputError(
                f"the sidecar declares ADC in {declared!r}, but the brain's ADC values look like "
                f"a factor of {detected:g} to 10^-6 mm^2/s",
                participant=participant,
                path=path,
                fix="correct the sidecar's Units field",
            )
        return factor, "sidecar"
    if policy == "sidecar":
        raise InputError("the ADC unit is not declared (no \"Units\" in the sidecar)", participant=participant, path=path, fix=fix)
    detected = detect_adc_factor(adc, brain_mask)
    if detected is None:
        raise InputError("the ADC unit is not declared and cannot be detected from the values", participant=participant, path=path, fix=fix)
    return detected, "detected"
