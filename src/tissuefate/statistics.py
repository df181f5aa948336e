"""The paper's statistics (METHOD.md section 9) and the result tables built from them.

Methods, families and edge cases are documented in docs/statistics.md. In short:

- medians with quartiles by numpy's ``linear`` quantile (R type 7) unless told otherwise;
- paired two-sided Wilcoxon signed-rank test, Pratt's handling of zero differences and the
  normal approximation without continuity correction: what Stata's ``signrank`` does, the
  software of the paper;
- Benjamini-Hochberg adjustment within each target (2 comparisons x 4 metrics = 8 tests);
- Lin's concordance correlation coefficient on cube-root volumes with a 95 % CI from the
  Fisher z-transform and Lin's (1989, 2000) variance; the asymptotic CI is available too.

Every table comes out sorted in the study's order and is written with fixed float formatting,
so two runs give byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_write_text
from tissuefate.io.tables import format_p, read_tsv, write_tsv  # noqa: F401  (re-exported for callers)
from tissuefate.metrics import APPROACH_ORDER, REPERFUSION_GROUP_ORDER, TARGET_ORDER

QUANTILE_METHOD = "linear"
SIGNIFICANCE_LEVEL = 0.008  # paper: adjusted P <= .008
CCC_EXCELLENT_ABOVE = 0.70
CCC_MODERATE_FROM = 0.50

COMPARED_METRICS = ("auc", "dice", "volume_diff_ml", "abs_volume_diff_ml")
SUMMARISED_METRICS = COMPARED_METRICS + ("volume_pred_ml", "volume_true_ml")
COMPARISONS = (("pretraining", "separate"), ("pretraining", "thresholding"))

SUMMARY_COLUMNS = ("target", "approach", "metric", "n", "median", "q1", "q3")
COMPARISON_COLUMNS = ("target", "metric", "comparison", "n_pairs", "statistic", "p", "p_bh", "significant")
CONCORDANCE_COLUMNS = ("target", "approach", "n", "ccc", "ci_low", "ci_high", "agreement")
MISMATCH_SUMMARY_COLUMNS = (
    "reperfusion_group",
    "approach",
    "n",
    "median",
    "q1",
    "q3",
    "compared_with",
    "n_pairs",
    "statistic",
    "p",
)


# --- single statistics -----------------------------------------------------------------


def _finite(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    return a[~np.isnan(a)]


def summarise(values: Iterable[float], quantile_method: str = QUANTILE_METHOD) -> dict[str, float]:
    """n, median, first and third quartile of the non-NaN values (NaN statistics when n = 0)."""
    a = _finite(values)
    if a.size == 0:
        return {"n": 0, "median": math.nan, "q1": math.nan, "q3": math.nan}
    q1, median, q3 = np.quantile(a, [0.25, 0.5, 0.75], method=quantile_method)
    return {"n": int(a.size), "median": float(median), "q1": float(q1), "q3": float(q3)}


class WilcoxonResult(NamedTuple):
    statistic: float  # min(W+, W-): the smaller signed-rank sum
    p: float
    n_pairs: int  # complete pairs, zero differences included


def wilcoxon_paired(
    x: Sequence[float],
    y: Sequence[float],
    *,
    zero_method: str = "pratt",
    method: str = "asymptotic",
    correction: bool = False,
) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of x - y, dropping pairs with a NaN.

    Defaults reproduce Stata's ``signrank`` (the paper's software): zero differences are
    ranked with the others and then dropped from the signed sums (Pratt 1959), the variance is
    corrected for zeros and ties, and P comes from the normal approximation without continuity
    correction. P is NaN when there is no pair or every difference is zero.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"paired samples must be 1-D and equally long, got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    n_pairs = int(d.size)
    if n_pairs == 0 or np.all(d == 0):
        return WilcoxonResult(math.nan, math.nan, n_pairs)
    res = stats.wilcoxon(d, zero_method=zero_method, method=method, correction=correction, alternative="two-sided")
    return WilcoxonResult(float(res.statistic), float(res.pvalue), n_pairs)


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted P values (statsmodels' ``fdr_bh``); NaN stays NaN
    and is not counted in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise InputError("P values must lie in [0, 1]")
    out[valid] = multipletests(p[valid], method="fdr_bh")[1]
    return out


class ConcordanceResult(NamedTuple):
    n: int
    ccc: float
    ci_low: float
    ci_high: float
    pearson_r: float
    bias_correction: float  # C_b = ccc / r, Lin's accuracy
    location_shift: float  # u = (mean_x - mean_y) / sqrt(s_x s_y)
    se: float  # standard error of the CCC (asymptotic) or of z = atanh(CCC) (z-transform)


def lins_ccc(
    x: Sequence[float],
    y: Sequence[float],
    *,
    confidence: float = 0.95,
    ci: str = "z-transform",
) -> ConcordanceResult:
    """Lin's (1989) concordance correlation coefficient with a confidence interval.

    Moments use the divisor n, as in Lin (1989) and Stata's ``concord``. The variance is Lin's
    (2000, correcting 1989):
        var(ccc) = [(1 - r^2) ccc^2 (1 - ccc^2) / r^2 + 2 ccc^3 (1 - ccc) u^2 / r
                    - ccc^4 u^4 / (2 r^2)] / (n - 2),
    and for ``ci="z-transform"`` var(z) = var(ccc) / (1 - ccc^2)^2 with z = atanh(ccc), the
    interval tanh(z -/+ q sqrt(var(z))). ``ci="asymptotic"`` gives ccc -/+ q sqrt(var(ccc))
    (symmetric, unclipped; the intervals printed in the paper are of this kind).
    Pairs with a NaN are dropped; everything is NaN below 3 pairs or without variance.
    """
    if ci not in ("z-transform", "asymptotic"):
        raise InputError(f"CI method {ci!r} is not z-transform or asymptotic")
    if not 0 < confidence < 1:
        raise InputError(f"confidence {confidence} is not in (0, 1)")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"paired samples must be 1-D and equally long, got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = math.nan
    if n < 3:
        return ConcordanceResult(n, nan, nan, nan, nan, nan, nan, nan)
    mx, my = x.mean(), y.mean()
    sx2 = float(np.mean((x - mx) ** 2))
    sy2 = float(np.mean((y - my) ** 2))
    sxy = float(np.mean((x - mx) * (y - my)))
    if sx2 == 0.0 or sy2 == 0.0:
        return ConcordanceResult(n, nan, nan, nan, nan, nan, nan, nan)
    ccc = 2.0 * sxy / (sx2 + sy2 + (mx - my) ** 2)
    r = sxy / math.sqrt(sx2 * sy2)
    u = (mx - my) / (sx2 * sy2) ** 0.25
    c_b = ccc / r if r != 0 else nan
    q = stats.norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_ccc = (
            (1 - r**2) * ccc**2 * (1 - ccc**2) / r**2
            + 2 * ccc**3 * (1 - ccc) * u**2 / r
            - ccc**4 * u**4 / (2 * r**2)
        ) / (n - 2)
    se_ccc = math.sqrt(var_ccc) if var_ccc >= 0 else nan
    if ci == "asymptotic":
        return ConcordanceResult(n, ccc, ccc - q * se_ccc, ccc + q * se_ccc, r, c_b, u, se_ccc)
    if abs(ccc) >= 1.0:  # perfect (dis)agreement: z is infinite and the interval a point
        return ConcordanceResult(n, ccc, ccc, ccc, r, c_b, u, 0.0)
    se_z = se_ccc / (1 - ccc**2)
    z = math.atanh(ccc)
    return ConcordanceResult(n, ccc, math.tanh(z - q * se_z), math.tanh(z + q * se_z), r, c_b, u, se_z)


def ccc_cube_root(pred_ml: Sequence[float], true_ml: Sequence[float], **kwargs) -> ConcordanceResult:
    """Lin's CCC of predicted vs true volume after a cube-root transform (paper: volumes skewed)."""
    return lins_ccc(np.cbrt(np.asarray(pred_ml, dtype=float)), np.cbrt(np.asarray(true_ml, dtype=float)), **kwargs)


def agreement_label(
    ccc: float, excellent_above: float = CCC_EXCELLENT_ABOVE, moderate_from: float = CCC_MODERATE_FROM
) -> str:
    """Paper's scale: excellent > 0.70, moderate 0.50-0.70 (both ends included), low < 0.50."""
    if ccc is None or math.isnan(ccc):
        return "undefined"
    if ccc > excellent_above:
        return "excellent"
    if ccc >= moderate_from:
        return "moderate"
    return "low"


# --- tables ----------------------------------------------------------------------------


def _ordered(values: Iterable[str], order: tuple[str, ...]) -> list[str]:
    values = set(values)
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def _check_unique(df: pd.DataFrame, keys: list[str], what: str) -> None:
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].to_dict()
        raise InputError(f"{what} has more than one row for {first}", fix="give each patient one row per combination")


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks the columns {missing}")


def _paired(df: pd.DataFrame, key: str, metric: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``metric`` for approaches a and b, matched on participant_id (inner join)."""
    left = df.loc[df[key] == a, ["participant_id", metric]]
    right = df.loc[df[key] == b, ["participant_id", metric]]
    both = left.merge(right, on="participant_id", suffixes=("_a", "_b")).sort_values("participant_id")
    return both[f"{metric}_a"].to_numpy(float), both[f"{metric}_b"].to_numpy(float)


def summary_table(
    per_case: pd.DataFrame,
    metrics: Sequence[str] = SUMMARISED_METRICS,
    quantile_method: str = QUANTILE_METHOD,
) -> pd.DataFrame:
    """``target, approach, metric, n, median, q1, q3`` for every target x approach x metric."""
    _require(per_case, ["target", "approach", *metrics], "the per-case table")
    rows = []
    for target in _ordered(per_case["target"], TARGET_ORDER):
        sub = per_case[per_case["target"] == target]
        for approach in _ordered(sub["approach"], APPROACH_ORDER):
            cell = sub[sub["approach"] == approach]
            for metric in metrics:
                rows.append({"target": target, "approach": approach, "metric": metric,
                             **summarise(cell[metric], quantile_method)})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def comparisons_table(
    per_case: pd.DataFrame,
    *,
    metrics: Sequence[str] = COMPARED_METRICS,
    comparisons: Sequence[tuple[str, str]] = COMPARISONS,
    family: str = "target",
    alpha: float = SIGNIFICANCE_LEVEL,
    zero_method: str = "pratt",
    method: str = "asymptotic",
) -> pd.DataFrame:
    """Paired Wilcoxon tests between approaches, Benjamini-Hochberg adjusted within a family.

    ``family="target"``: the tests of one target (paper: 2 comparisons x 4 metrics = 8);
    ``family="all"``: every test in the table. ``significant`` is ``p_bh <= alpha``.
    Patients are paired on participant_id within a target; unmatched patients are left out.
    """
    if family not in ("target", "all"):
        raise InputError(f"BH family {family!r} is not 'target' or 'all'")
    _require(per_case, ["participant_id", "target", "approach", *metrics], "the per-case table")
    _check_unique(per_case, ["target", "approach", "participant_id"], "the per-case table")
    rows = []
    for target in _ordered(per_case["target"], TARGET_ORDER):
        sub = per_case[per_case["target"] == target]
        for metric in metrics:
            for a, b in comparisons:
                x, y = _paired(sub, "approach", metric, a, b)
                res = wilcoxon_paired(x, y, zero_method=zero_method, method=method)
                rows.append({"target": target, "metric": metric, "comparison": f"{a}_vs_{b}",
                             "n_pairs": res.n_pairs, "statistic": res.statistic, "p": res.p})
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    if table.empty:
        return table
    if family == "all":
        table["p_bh"] = benjamini_hochberg(table["p"].to_numpy())
    else:
        table["p_bh"] = np.nan
        for _, idx in table.groupby("target", sort=False).groups.items():
            table.loc[idx, "p_bh"] = benjamini_hochberg(table.loc[idx, "p"].to_numpy())
    table["significant"] = (table["p_bh"] <= alpha).fillna(False).astype(bool)
    return table


def concordance_table(
    per_case: pd.DataFrame,
    *,
    confidence: float = 0.95,
    ci: str = "z-transform",
) -> pd.DataFrame:
    """``target, approach, n, ccc, ci_low, ci_high, agreement`` on cube-root volumes."""
    _require(per_case, ["target", "approach", "volume_pred_ml", "volume_true_ml"], "the per-case table")
    rows = []
    for target in _ordered(per_case["target"], TARGET_ORDER):
        sub = per_case[per_case["target"] == target]
        for approach in _ordered(sub["approach"], APPROACH_ORDER):
            cell = sub[sub["approach"] == approach]
            res = ccc_cube_root(cell["volume_pred_ml"], cell["volume_true_ml"], confidence=confidence, ci=ci)
            rows.append({"target": target, "approach": approach, "n": res.n, "ccc": res.ccc,
                         "ci_low": res.ci_low, "ci_high": res.ci_high, "agreement": agreement_label(res.ccc)})
    return pd.DataFrame(rows, columns=list(CONCORDANCE_COLUMNS))


def mismatch_summary(
    mismatch: pd.DataFrame,
    *,
    reference: str = "thresholding",
    quantile_method: str = QUANTILE_METHOD,
    zero_method: str = "pratt",
    method: str = "asymptotic",
) -> pd.DataFrame:
    """Median (IQR) mismatch ratio per reperfusion group and approach, and the paired Wilcoxon
    P of each approach against ``reference`` in the same group (unadjusted, as in the paper)."""
    _require(mismatch, ["participant_id", "reperfusion_group", "approach", "mismatch_ratio"], "the mismatch table")
    _check_unique(mismatch, ["reperfusion_group", "approach", "participant_id"], "the mismatch table")
    rows = []
    for group in _ordered(mismatch["reperfusion_group"], REPERFUSION_GROUP_ORDER):
        sub = mismatch[mismatch["reperfusion_group"] == group]
        for approach in _ordered(sub["approach"], APPROACH_ORDER):
            row = {"reperfusion_group": group, "approach": approach,
                   **summarise(sub.loc[sub["approach"] == approach, "mismatch_ratio"], quantile_method)}
            if approach == reference or reference not in set(sub["approach"]):
                row.update(compared_with=None, n_pairs=0, statistic=math.nan, p=math.nan)
            else:
                x, y = _paired(sub, "approach", "mismatch_ratio", approach, reference)
                res = wilcoxon_paired(x, y, zero_method=zero_method, method=method)
                row.update(compared_with=reference, n_pairs=res.n_pairs, statistic=res.statistic, p=res.p)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(MISMATCH_SUMMARY_COLUMNS))


# --- writing ---------------------------------------------------------------------------


# --- Markdown, laid out like the paper -------------------------------------------------

_METRIC_LABELS = {
    "auc": "AUC",
    "dice": "DSC",
    "volume_diff_ml": "Volume difference (mL)",
    "abs_volume_diff_ml": "Absolute volume difference (mL)",
    "volume_pred_ml": "Predicted volume (mL)",
    "volume_true_ml": "True volume (mL)",
}
_METRIC_DIGITS = {"auc": 2, "dice": 2}  # volumes and ratios: 1 decimal
_NAMES = {
    "tissue_at_risk": "Tissue at risk",
    "ischemic_core": "Ischemic core",
    "pretraining": "Pretraining",
    "separate": "Separate",
    "thresholding": "Thresholding",
    "minimal": "Minimal",
    "partial": "Partial",
    "major": "Major",
    "unknown": "Unknown",
}


def _name(value: object) -> str:
    return _NAMES.get(str(value), str(value))


def format_median_iqr(median: float, q1: float, q3: float, digits: int = 2) -> str:
    """``0.92 (0.89–0.95)``; ``n/a`` when undefined."""
    if any(v is None or math.isnan(v) for v in (median, q1, q3)):
        return "n/a"
    return f"{median:.{digits}f} ({q1:.{digits}f}–{q3:.{digits}f})"


def _pipe_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return str(value)


def to_markdown(df: pd.DataFrame) -> str:
    """Render one of the result tables as Markdown laid out like the paper's results.

    summary: one row per target and approach, a ``median (IQR)`` column per metric;
    comparisons: P and BH-adjusted P in AJNR style; concordance: ``ρc (95 % CI)``;
    mismatch summary: ``median (IQR)`` with P against the reference approach.
    Any other table is rendered cell by cell.
    """
    cols = tuple(df.columns)
    if cols == SUMMARY_COLUMNS:
        metrics = list(dict.fromkeys(df["metric"]))
        header = ["Target", "Approach", "n"] + [_METRIC_LABELS.get(m, m) + " median (IQR)" for m in metrics]
        rows = []
        for (target, approach), cell in df.groupby(["target", "approach"], sort=False):
            by_metric = cell.set_index("metric")
            n = int(by_metric["n"].max()) if len(by_metric) else 0
            rows.append([_name(target), _name(approach), str(n)] + [
                format_median_iqr(by_metric.at[m, "median"], by_metric.at[m, "q1"], by_metric.at[m, "q3"],
                                  _METRIC_DIGITS.get(m, 1)) if m in by_metric.index else "n/a"
                for m in metrics])
        return _pipe_table(header, rows)
    if cols == COMPARISON_COLUMNS:
        header = ["Target", "Metric", "Comparison", "Pairs", "W", "P", "P (BH)", "Significant"]
        rows = [[_name(r.target), _METRIC_LABELS.get(r.metric, r.metric),
                 " vs ".join(_name(s) for s in str(r.comparison).split("_vs_")),
                 str(int(r.n_pairs)), _fmt(r.statistic), format_p(r.p), format_p(r.p_bh),
                 "yes" if r.significant else "no"] for r in df.itertuples(index=False)]
        return _pipe_table(header, rows)
    if cols == CONCORDANCE_COLUMNS:
        header = ["Target", "Approach", "n", "ρc (95% CI)", "Agreement"]
        rows = []
        for r in df.itertuples(index=False):
            value = "n/a" if math.isnan(r.ccc) else f"{r.ccc:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f})"
            rows.append([_name(r.target), _name(r.approach), str(int(r.n)), value, str(r.agreement)])
        return _pipe_table(header, rows)
    if cols == MISMATCH_SUMMARY_COLUMNS:
        header = ["Reperfusion", "Approach", "n", "Mismatch ratio median (IQR)", "P vs reference"]
        rows = []
        for r in df.itertuples(index=False):
            compared = r.compared_with if isinstance(r.compared_with, str) and r.compared_with else None
            p = f"{format_p(r.p)} (vs {_name(compared)})" if compared else "—"
            rows.append([_name(r.reperfusion_group), _name(r.approach), str(int(r.n)),
                         format_median_iqr(r.median, r.q1, r.q3, 1), p])
        return _pipe_table(header, rows)
    return _pipe_table([str(c) for c in cols], [[_fmt(v) for v in row] for row in df.itertuples(index=False)])


def write_markdown(df: pd.DataFrame, path: str | Path, title: str | None = None) -> None:
    """Write ``to_markdown(df)`` (under an optional ``## title``) atomically."""
    text = to_markdown(df)
    if title:
        text = f"## {title}\n\n{text}"
    atomic_write_text(path, text)


__all__ = [
    "COMPARED_METRICS", "COMPARISONS", "COMPARISON_COLUMNS", "CONCORDANCE_COLUMNS", "ConcordanceResult",
    "MISMATCH_SUMMARY_COLUMNS", "SUMMARISED_METRICS", "SUMMARY_COLUMNS", "WilcoxonResult",
    "agreement_label", "benjamini_hochberg", "ccc_cube_root", "comparisons_table", "concordance_table",
    "format_median_iqr", "format_p", "lins_ccc", "mismatch_summary", "read_tsv",
    "summarise", "summary_table", "to_markdown", "wilcoxon_paired", "write_markdown", "write_tsv",
]
