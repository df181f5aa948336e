"""Trial imaging criteria from a patient's core and tissue-at-risk volumes.

Sources (docs/predict.md gives the wording of each trial):

- DEFUSE 3 (Albers et al., N Engl J Med 2018;378:708-718): initial infarct (core) < 70 mL,
  ratio of ischemic tissue to core >= 1.8, absolute mismatch >= 15 mL.
- EXTEND-IA (Campbell et al., N Engl J Med 2015;372:1009-1018): core < 70 mL,
  mismatch ratio > 1.2, absolute mismatch > 10 mL.
- SWIFT PRIME (Saver et al., N Engl J Med 2015;372:2285-2295), target mismatch: core <= 50 mL,
  Tmax > 10 s volume <= 100 mL, mismatch >= 15 mL, mismatch ratio > 1.8.

The criteria are evaluated on the numbers the report shows: volumes rounded to 0.1 mL and the
ratio to 0.01, so a reader checking the report by hand reaches the same verdict.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

VOLUME_DECIMALS = 1
RATIO_DECIMALS = 2


@dataclass(frozen=True)
class Criterion:
    quantity: str  # core_ml, mismatch_ratio, mismatch_ml, tmax10s_ml
    op: str  # <, <=, >, >=
    value: float

    def text(self) -> str:
        names = {"core_ml": "core", "mismatch_ratio": "mismatch ratio", "mismatch_ml": "mismatch volume",
                 "tmax10s_ml": "Tmax > 10 s volume"}
        unit = "" if self.quantity == "mismatch_ratio" else " mL"
        return f"{names[self.quantity]} {self.op.replace('<=', '≤').replace('>=', '≥')} {self.value:g}{unit}"


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

TRIALS: dict[str, dict] = {
    "DEFUSE 3": {
        "source": "Albers GW et al. N Engl J Med 2018;378:708-718 (doi 10.1056/NEJMoa1713973)",
        "criteria": (Criterion("core_ml", "<", 70.0), Criterion("mismatch_ratio", ">=", 1.8),
                     Criterion("mismatch_ml", ">=", 15.0)),
    },
    "EXTEND-IA": {
        "source": "Campbell BCV et al. N Engl J Med 2015;372:1009-1018 (doi 10.1056/NEJMoa1414792)",
        "criteria": (Criterion("core_ml", "<", 70.0), Criterion("mismatch_ratio", ">", 1.2),
                     Criterion("mismatch_ml", ">", 10.0)),
    },
    "SWIFT PRIME": {
        "source": "Saver JL et al. N Engl J Med 2015;372:2285-2295 (doi 10.1056/NEJMoa1415061), target mismatch profile",
        "criteria": (Criterion("core_ml", "<=", 50.0), Criterion("tmax10s_ml", "<=", 100.0),
                     Criterion("mismatch_ml", ">=", 15.0), Criterion("mismatch_ratio", ">", 1.8)),
    },
}


def mismatch(tissue_at_risk_ml: float, core_ml: float) -> dict:
    """Mismatch volume (tissue at risk - core, mL) and ratio (tissue at risk / core), rounded as
    reported. With no core the ratio is infinite (any hypoperfusion) or undefined (none)."""
    tar = round(float(tissue_at_risk_ml), VOLUME_DECIMALS)
    core = round(float(core_ml), VOLUME_DECIMALS)
    if core > 0:
        ratio = round(tar / core, RATIO_DECIMALS)
    else:
        ratio = math.inf if tar > 0 else math.nan
    return {"tissue_at_risk_ml": tar, "core_ml": core, "mismatch_ml": round(tar - core, VOLUME_DECIMALS),
            "mismatch_ratio": ratio}


def evaluate(trial: str, quantities: dict) -> dict:
    """``{"meets": True/False/None, "checks": [...]}``; None when a quantity is missing or undefined
    (e.g. no Tmax > 10 s volume without perfusion)."""
    checks, verdicts = [], []
    for c in TRIALS[trial]["criteria"]:
        value = quantities.get(c.quantity)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            ok = None
        else:
            ok = bool(_OPS[c.op](float(value), c.value))
        verdicts.append(ok)
        checks.append({"criterion": c.text(), "value": json_number(value), "met": ok})
    meets = False if False in verdicts else (None if None in verdicts else True)
    return {"meets": meets, "verdict": verdict_text(meets), "checks": checks, "source": TRIALS[trial]["source"]}


def verdict_text(meets: bool | None) -> str:
    return {True: "meets", False: "does not meet", None: "cannot be assessed"}[meets]


def json_number(value):
    """JSON has no infinity or NaN: "infinite" and null."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "infinite"
    return value
