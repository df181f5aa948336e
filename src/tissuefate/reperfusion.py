"""Reperfusion rate and groups (METHOD.md section 3).

reperfusion rate = 100 % x (1 - V(Tmax_4-24h > 6 s) / V(Tmax_baseline > 6 s));
minimal: rate <= 20 %, major: rate >= 80 %, partial: in between, unknown: no 4-24 h study.
"""

from __future__ import annotations

import math

from tissuefate.names import MAJOR, MINIMAL, PARTIAL, UNKNOWN  # noqa: F401  (used by callers)
from tissuefate.names import REPERFUSION_GROUPS as GROUPS

# Rates are rounded to this many decimals before comparison with the group boundaries, so
# that 1 - 0.8 = 0.19999999999999996 does not put an exact 20 % into "partial".
_RATE_DECIMALS = 9


def reperfusion_rate(baseline_ml: float, followup_ml: float | None) -> float:
    """Percent reduction of the Tmax > 6 s volume; NaN if there is no 4-24 h study.

    A baseline volume of zero has no defined rate (such a patient is excluded for
    complete reperfusion already on the baseline PWI), so it raises ValueError.
    The rate may be negative when the lesion grew.
    """
    if followup_ml is None or (isinstance(followup_ml, float) and math.isnan(followup_ml)):
        return float("nan")
    if baseline_ml < 0 or followup_ml < 0:
        raise ValueError("volumes must be non-negative")
    if baseline_ml == 0:
        raise ValueError("no baseline Tmax > 6 s lesion: the reperfusion rate is undefined")
    return round(100.0 * (1.0 - followup_ml / baseline_ml), _RATE_DECIMALS)


def reperfusion_group(rate_percent: float, minimal_max: float = 20.0, major_min: float = 80.0) -> str:
    """Group of a rate: minimal (<= minimal_max), major (>= major_min), partial, or unknown (NaN)."""
    if rate_percent is None or math.isnan(rate_percent):
        return UNKNOWN
    if rate_percent <= minimal_max:
        return MINIMAL
    if rate_percent >= major_min:
        return MAJOR
    return PARTIAL
