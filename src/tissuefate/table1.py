"""The paper's cohort Table: clinical and imaging variables per reperfusion group.

n (%) for categorical variables, mean [SD] for age, median (IQR) for the other continuous
ones, as in the paper. P values across the four groups: Kruskal-Wallis for continuous
variables; for categorical ones Pearson's chi-square when every expected count is >= 5,
otherwise the Fisher-Freeman-Halton exact test (exact enumeration for 2 x k tables, a
seeded Monte Carlo estimate with 20,000 tables for larger ones). Hand-written on purpose:
SciPy 1.15's ``fisher_exact`` takes r x c tables only with a Monte Carlo or permutation
``method`` (no exact enumeration for 2 x k), which would change the published P values.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from tissuefate.io import tables

GROUP_ORDER = ("minimal", "major", "partial", "unknown")  # the paper's column order
GROUP_TITLES = {"minimal": "Minimal reperfusion", "major": "Major reperfusion",
                "partial": "Partial reperfusion", "unknown": "Unknown reperfusion"}

# (column, label, kind, level): kind "binary" counts `level`, "mean_sd", "median_iqr", "categorical".
VARIABLES = (
    ("sex", "Male", "binary", "M"),
    ("age", "Age (yr)", "mean_sd", None),
    ("hypertension", "Hypertension", "binary", "yes"),
    ("diabetes", "Diabetes", "binary", "yes"),
    ("dyslipidemia", "Dyslipidemia", "binary", "yes"),
    ("atrial_fibrillation", "Atrial fibrillation", "binary", "yes"),
    ("treatment", "Treatment methods", "categorical",
     {"iv_tpa_only": "IV tPA only", "direct_thrombectomy": "Direct thrombectomy",
      "bridging": "Bridging therapy", "none": "No treatment"}),
    ("onset_to_treatment_h", "Onset-to-treatment time (hr)", "median_iqr", None),
    ("adc_lesion_baseline_ml", "Baseline DWI lesion volume (mL)", "median_iqr", None),
    ("tmax_baseline_ml", "Baseline Tmax lesion volume (mL)", "median_iqr", None),
    ("mismatch_ratio_baseline", "PWI/DWI mismatch ratio", "median_iqr", None),
    ("nihss_baseline", "Baseline NIHSS", "median_iqr", None),
    ("symptomatic_hemorrhage", "Symptomatic hemorrhage", "binary", "yes"),
    ("reperfusion_rate", "Reperfusion rate (%)", "median_iqr", None),
    ("final_infarct_ml", "Final infarct volume (mL)", "median_iqr", None),
    ("mrs_90d", "90-day mRS", "median_iqr", None),
)

MONTE_CARLO_TABLES = 20_000


def _fmt(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NA"
    if abs(x) >= 10 or float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def format_p(p: float) -> str:
    """The paper's Table 1 style: '<.001', '.004', '.3', 'NA'."""
    return tables.format_p(p, digits="adaptive", missing="NA")


def _table_log_prob(table: np.ndarray) -> float:
    """Log probability of a contingency table under the multivariate hypergeometric null."""
    rows, cols, n = table.sum(1), table.sum(0), table.sum()
    lg = math.lgamma
    return (sum(lg(r + 1) for r in rows) + sum(lg(c + 1) for c in cols) - lg(n + 1)
            - sum(lg(x + 1) for x in table.ravel()))


def fisher_freeman_halton(table, seed: int = 0) -> float:
    """Fisher's exact test for an r x k table (two-sided: tables no more probable than observed)."""
    table = np.asarray(table, dtype=int)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return 1.0
    observed = _table_log_prob(table)
    tol = 1e-7
    if table.shape[0] == 2:
        # Exact: enumerate the first row under the fixed margins.
        cols = table.sum(0)
        r0 = int(table[0].sum())
        total = -math.inf
        p_sum = 0.0
        for first in itertools.product(*[range(int(c) + 1) for c in cols[:-1]]):
            last = r0 - sum(first)
            if last < 0 or last > cols[-1]:
                continue
            row0 = np.array(first + (last,))
            lp = _table_log_prob(np.vstack([row0, cols - row0]))
            total = np.logaddexp(total, lp)
            if lp <= observed + tol:
                p_sum += math.exp(lp)
        return float(min(1.0, p_sum / math.exp(total)))
    # Monte Carlo: permute column labels against row labels, keeping both margins.
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(table.shape[0]), table.sum(1))
    cols = np.repeat(np.arange(table.shape[1]), table.sum(0))
    hits = 0
    for _ in range(MONTE_CARLO_TABLES):
        perm = rng.permutation(cols)
        t = np.zeros_like(table)
        np.add.at(t, (rows, perm), 1)
        hits += _table_log_prob(t) <= observed + tol
    return float((hits + 1) / (MONTE_CARLO_TABLES + 1))


def categorical_p(table) -> tuple[float, str]:
    """P value and test name for a contingency table (rows: levels, columns: groups)."""
    table = np.asarray(table, dtype=float)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return float("nan"), "none"
    expected = stats.contingency.expected_freq(table)
    if (expected >= 5).all():
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        return float(p), "chi2"
    return fisher_freeman_halton(table.astype(int)), "fisher"


def continuous_p(samples: list[np.ndarray]) -> float:
    samples = [np.asarray(s, dtype=float)[~np.isnan(np.asarray(s, dtype=float))] for s in samples]
    samples = [s for s in samples if s.size]
    if len(samples) < 2 or len(np.unique(np.concatenate(samples))) < 2:
        return float("nan")
    return float(stats.kruskal(*samples).pvalue)


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series.replace({"n/a": np.nan, "": np.nan}), errors="coerce").to_numpy(dtype=float)


def _summary(values: np.ndarray, kind: str) -> str:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "NA"
    if kind == "mean_sd":
        sd = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
        return f"{_fmt(float(np.mean(values)))} [SD, {_fmt(sd)}]"
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{_fmt(med)} ({_fmt(q1)}–{_fmt(q3)})"


def _count(mask: np.ndarray, n: int) -> str:
    k = int(mask.sum())
    return f"{k} ({round(100 * k / n) if n else 0})"


def table1(cohort: pd.DataFrame) -> pd.DataFrame:
    """The cohort Table for the included patients: one row per variable (and level)."""
    inc = cohort[cohort["included"].astype(bool)].copy()
    groups = [g for g in GROUP_ORDER]
    parts = {g: inc[inc["reperfusion_group"] == g] for g in groups}
    columns = ["variable", "level", "all"] + list(groups) + ["p", "test"]
    rows = [{"variable": "n", "level": "", "all": str(len(inc)), **{g: str(len(parts[g])) for g in groups},
             "p": "", "test": ""}]
    for column, label, kind, level in VARIABLES:
        if column not in inc.columns:
            continue
        if kind in ("binary", "categorical"):
            values = inc[column].astype(str)
            if kind == "binary":
                # Binary: a 2 x k table of level vs not level.
                hit = np.array([int((parts[g][column].astype(str) == level).sum()) for g in groups])
                table = np.vstack([hit, np.array([len(parts[g]) for g in groups]) - hit])
            else:
                levels = list(level)
                table = np.array([[int((parts[g][column].astype(str) == lv).sum()) for g in groups] for lv in levels])
            p, test = categorical_p(table)
            if kind == "binary":
                rows.append({"variable": label, "level": level, "all": _count(values.to_numpy() == level, len(inc)),
                             **{g: _count(parts[g][column].astype(str).to_numpy() == level, len(parts[g])) for g in groups},
                             "p": format_p(p), "test": test})
            else:
                rows.append({"variable": label, "level": "", "all": "", **{g: "" for g in groups},
                             "p": format_p(p), "test": test})
                for lv in levels:
                    rows.append({"variable": label, "level": level[lv],
                                 "all": _count(values.to_numpy() == lv, len(inc)),
                                 **{g: _count(parts[g][column].astype(str).to_numpy() == lv, len(parts[g])) for g in groups},
                                 "p": "", "test": ""})
        else:
            samples = [_numeric(parts[g][column]) for g in groups]
            p = continuous_p(samples)
            rows.append({"variable": label, "level": "", "all": _summary(_numeric(inc[column]), kind),
                         **{g: _summary(s, kind) for g, s in zip(groups, samples)},
                         "p": format_p(p), "test": "kruskal" if not math.isnan(p) else "none"})
    return pd.DataFrame(rows, columns=columns)


def table1_markdown(table: pd.DataFrame) -> str:
    n = dict(zip(table.columns, table.iloc[0]))
    header = ["", f"All Patients (n = {n['all']})"] + [f"{GROUP_TITLES[g]} (n = {n[g]})" for g in GROUP_ORDER] + ["P Value"]
    lines = ["# Clinical and imaging information of included patients", "",
             "Data are No. (%), median (IQR), or mean [SD]. P: Kruskal–Wallis (continuous), "
             "chi-square or Fisher–Freeman–Halton exact (categorical).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in table.iloc[1:].iterrows():
        # A level row of a categorical variable (no test of its own) is indented under it.
        name = f"&nbsp;&nbsp;{r['level']}" if r["level"] and not r["test"] else r["variable"]
        cells = [name, r["all"]] + [r[g] for g in GROUP_ORDER] + [r["p"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
