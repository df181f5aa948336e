"""Statistics against independent references: scipy, statsmodels, a direct Lin (1989) formula,
exact rational arithmetic, Stata's published signrank example and a coverage simulation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from tissuefate import statistics as st
from tissuefate.errors import InputError

# --- summarise -------------------------------------------------------------------------


def test_summarise_linear_quantiles_and_nan():
    s = st.summarise([4.0, 1.0, np.nan, 3.0, 2.0])
    assert s == {"n": 4, "median": 2.5, "q1": 1.75, "q3": 3.25}  # numpy "linear" (R type 7)
    # Stata's summarize/tabstat percentiles are numpy's averaged_inverted_cdf (R type 2).
    assert st.summarise([1.0, 2.0, 3.0, 4.0], "averaged_inverted_cdf") == {"n": 4, "median": 2.5, "q1": 1.5, "q3": 3.5}
    rng = np.random.default_rng(0)
    x = rng.normal(size=37)
    s = st.summarise(x)
    assert (s["q1"], s["median"], s["q3"]) == pytest.approx(tuple(pd.Series(x).quantile([0.25, 0.5, 0.75])))
    empty = st.summarise([np.nan])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("median", "q1", "q3"))


# --- Wilcoxon --------------------------------------------------------------------------

# Stata manual, [R] signrank, "webuse fuel": mpg of 12 cars without and with a fuel additive.
# Published output: 3 positive, 8 negative, 1 zero; sum of ranks 13.5 / 63.5 / 1;
# adjusted variance 160.62; z = -1.973, Prob > |z| = 0.0485.
FUEL_MPG1 = [20, 23, 21, 25, 18, 17, 18, 24, 20, 24, 23, 19]
FUEL_MPG2 = [24, 25, 21, 22, 23, 18, 17, 28, 24, 27, 21, 23]


def test_wilcoxon_reproduces_statas_published_signrank_example():
    res = st.wilcoxon_paired(FUEL_MPG1, FUEL_MPG2)
    assert res.n_pairs == 12
    assert res.statistic == 13.5  # smaller signed-rank sum (the positive one here)
    assert round(res.p, 4) == 0.0485
    z = stats.norm.isf(res.p / 2)
    assert round(z, 3) == 1.973


def _pratt_normal_p(x, y):
    """Independent Pratt (1959) / Cureton (1967) normal approximation, written out."""
    d = np.asarray(x, float) - np.asarray(y, float)
    ranks = stats.rankdata(np.abs(d))
    t_plus = ranks[d > 0].sum()
    n, n0 = d.size, int((d == 0).sum())
    mean = (n * (n + 1) - n0 * (n0 + 1)) / 4
    var = (n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1)) / 24
    _, ties = np.unique(np.abs(d[d != 0]), return_counts=True)
    var -= (ties**3 - ties).sum() / 48
    return 2 * stats.norm.sf(abs(t_plus - mean) / math.sqrt(var))


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_matches_scipy_and_a_direct_pratt_formula_with_ties_and_zeros(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(0.6, 0.1, 40), 2)
    y = np.round(x + rng.normal(0.02, 0.05, 40), 2)
    y[:3] = x[:3]  # zero differences
    res = st.wilcoxon_paired(x, y)
    ref = stats.wilcoxon(x, y, zero_method="pratt", method="asymptotic", correction=False)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.p == pytest.approx(_pratt_normal_p(x, y), rel=1e-10)
    # Wilcox's original rule (drop zeros first) gives a different P on these data.
    assert res.p != pytest.approx(stats.wilcoxon(x, y, zero_method="wilcox", method="asymptotic").pvalue, rel=1e-6)


def test_wilcoxon_drops_nan_pairs_and_handles_degenerate_input():
    x = [0.8, 0.7, np.nan, 0.9, 0.6, 0.75]
    y = [0.6, 0.65, 0.5, np.nan, 0.55, 0.7]
    res = st.wilcoxon_paired(x, y)
    assert res.n_pairs == 4
    ref = stats.wilcoxon([0.8, 0.7, 0.6, 0.75], [0.6, 0.65, 0.55, 0.7], zero_method="pratt",
                         method="asymptotic", correction=False)
    assert res.p == pytest.approx(ref.pvalue)
    same = st.wilcoxon_paired([1.0, 2.0], [1.0, 2.0])
    assert same.n_pairs == 2 and math.isnan(same.p)
    none = st.wilcoxon_paired([np.nan], [1.0])
    assert none.n_pairs == 0 and math.isnan(none.p)
    # The exact null distribution on request: 5 positive differences -> 2 / 2^5.
    exact = st.wilcoxon_paired([2, 3, 4, 5, 6], [1, 1, 1, 1, 1], method="exact")
    assert exact.p == pytest.approx(0.0625)
    with pytest.raises(InputError):
        st.wilcoxon_paired([1.0, 2.0], [1.0])


# --- Benjamini-Hochberg ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.02, 4), rng.uniform(0, 1, 12), [0.5, 0.5, 1.0]])
    rng.shuffle(p)
    expected = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(st.benjamini_hochberg(p), expected, rtol=0, atol=1e-15)


def test_benjamini_hochberg_nan_and_hand_case():
    p = [0.01, np.nan, 0.04, 0.03, 0.2]
    out = st.benjamini_hochberg(p)
    assert math.isnan(out[1])
    # m = 4: 0.01*4/1 = .04; 0.03*4/2 = .06; 0.04*4/3 = .0533 -> min with later = .0533; .2
    np.testing.assert_allclose(out[[0, 3, 2, 4]], [0.04, 0.05333333333333333, 0.05333333333333333, 0.2])
    np.testing.assert_allclose(out[[0, 2, 3, 4]], multipletests([0.01, 0.04, 0.03, 0.2], method="fdr_bh")[1])
    assert st.benjamini_hochberg([]).size == 0
    with pytest.raises(InputError):
        st.benjamini_hochberg([1.5])


# --- Lin's CCC -------------------------------------------------------------------------


def _ccc_exact(x, y):
    """Lin's definition 1 - E(x - y)^2 / [s_x^2 + s_y^2 + (mean_x - mean_y)^2], in fractions."""
    x = [Fraction(v) for v in x]
    y = [Fraction(v) for v in y]
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sx2 = sum((v - mx) ** 2 for v in x) / n
    sy2 = sum((v - my) ** 2 for v in y) / n
    msd = sum((a - b) ** 2 for a, b in zip(x, y)) / n
    return 1 - msd / (sx2 + sy2 + (mx - my) ** 2)


def _lin1989_z_interval(x, y, confidence=0.95):
    """Direct transcription of Lin (1989) for Z = atanh(rho_c):
    var(Z) = 1/(n-2) [ (1-r^2) rc^2 / ((1-rc^2) r^2) + 2 rc^3 (1-rc) u^2 / (r (1-rc^2)^2)
                      - rc^4 u^4 / (2 r^2 (1-rc^2)^2) ],
    with moments from numpy's biased covariance and Pearson r from np.corrcoef."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    cov = np.cov(x, y, bias=True)
    r = np.corrcoef(x, y)[0, 1]
    rc = 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2)
    u = (x.mean() - y.mean()) / math.sqrt(math.sqrt(cov[0, 0]) * math.sqrt(cov[1, 1]))
    one = 1 - rc**2
    var_z = ((1 - r**2) * rc**2 / (one * r**2) + 2 * rc**3 * (1 - rc) * u**2 / (r * one**2)
             - rc**4 * u**4 / (2 * r**2 * one**2)) / (n - 2)
    q = stats.norm.ppf(0.5 + confidence / 2)
    z = 0.5 * math.log((1 + rc) / (1 - rc))
    return rc, math.tanh(z - q * math.sqrt(var_z)), math.tanh(z + q * math.sqrt(var_z))


def test_ccc_hand_worked_example():
    # x = 1..5, y = 2,2,4,5,4: means 3 and 3.4, variances 2 and 1.44, covariance 1.4
    # -> rho_c = 2.8 / (2 + 1.44 + 0.16) = 7/9; r = 1.4 / sqrt(2.88).
    x, y = [1, 2, 3, 4, 5], [2, 2, 4, 5, 4]
    assert _ccc_exact(x, y) == Fraction(7, 9)
    res = st.lins_ccc(x, y)
    assert res.ccc == pytest.approx(7 / 9, abs=1e-15)
    assert res.pearson_r == pytest.approx(1.4 / math.sqrt(2.88))
    assert res.bias_correction == pytest.approx((7 / 9) / (1.4 / math.sqrt(2.88)))
    assert res.location_shift == pytest.approx(-0.4 / math.sqrt(math.sqrt(2) * 1.2))


def test_ccc_matches_keras_documented_example():
    # Published data + printed rho_c: TensorFlow API reference, tf.keras.metrics.concordance_correlation
    # (https://www.tensorflow.org/api_docs/python/tf/keras/metrics/concordance_correlation), example
    # y_true = [[0, 1, 0.5], [1, 1, 0.2]], y_pred = [[0.1, 0.9, 0.5], [1, 0.9, 0.2]], axis=-1
    # -> [0.97560976 0.98765432] (one rho_c per row of 3 pairs, divisor n as in Lin 1989).
    # Exactly 40/41 and 80/81. The page gives no interval, so only the point estimate is checked;
    # no published example with raw data and a printed CI was found (see docs/statistics.md).
    rows = [([0, 1, 0.5], [0.1, 0.9, 0.5], 0.97560976, Fraction(40, 41)),
            ([1, 1, 0.2], [1, 0.9, 0.2], 0.98765432, Fraction(80, 81))]
    for y_true, y_pred, published, exact in rows:
        assert _ccc_exact([str(v) for v in y_true], [str(v) for v in y_pred]) == exact
        res = st.lins_ccc(y_pred, y_true)
        assert res.n == 3
        assert res.ccc == pytest.approx(published, abs=5e-9)  # the 8 printed decimals
        assert res.ccc == pytest.approx(float(exact), rel=1e-14)


def test_ccc_torchmetrics_documented_example_differs_only_by_divisor():
    # torchmetrics' ConcordanceCorrCoef docs print tensor(0.9777) for preds = [2.5, 0, 2, 8],
    # target = [3, -0.5, 2, 7] (https://lightning.ai/docs/torchmetrics/stable/regression/
    # concordance_corr_coef.html). That value uses n - 1 variances/covariance with the squared mean
    # difference unscaled; Lin's divisor-n estimator (ours) gives 0.9768 on the same data.
    preds, target = np.array([2.5, 0.0, 2.0, 8.0]), np.array([3.0, -0.5, 2.0, 7.0])
    assert st.lins_ccc(preds, target).ccc == pytest.approx(0.9768, abs=5e-5)
    vp, vt = preds.var(ddof=1), target.var(ddof=1)
    cov = np.cov(preds, target, ddof=1)[0, 1]
    assert 2 * cov / (vp + vt + (preds.mean() - target.mean()) ** 2) == pytest.approx(0.9777, abs=5e-5)


@pytest.mark.parametrize("seed", range(5))
def test_ccc_and_z_interval_match_two_independent_formulations(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 70))
    true = rng.gamma(2.0, 3.0, n)
    pred = 0.3 + 0.85 * true + rng.normal(0, 1.0, n)
    res = st.lins_ccc(pred, true)
    assert res.ccc == pytest.approx(float(_ccc_exact(pred.tolist(), true.tolist())), rel=1e-12)
    rc, lo, hi = _lin1989_z_interval(pred, true)
    assert (res.ccc, res.ci_low, res.ci_high) == pytest.approx((rc, lo, hi), rel=1e-10)
    assert res.ci_low < res.ccc < res.ci_high
    swapped = st.lins_ccc(true, pred)  # symmetric in its arguments
    assert (swapped.ccc, swapped.ci_low, swapped.ci_high) == pytest.approx((res.ccc, res.ci_low, res.ci_high))


def test_ccc_asymptotic_interval_is_symmetric_like_the_papers():
    # The paper's intervals are symmetric about rho_c (0.822, 0.725-0.919): Stata's asymptotic CI.
    rng = np.random.default_rng(7)
    x = rng.normal(3, 1, 33)
    y = x + rng.normal(0.1, 0.5, 33)
    res = st.lins_ccc(x, y, ci="asymptotic")
    assert res.ccc - res.ci_low == pytest.approx(res.ci_high - res.ccc)
    assert res.ci_high - res.ccc == pytest.approx(1.959963984540054 * res.se)
    z = st.lins_ccc(x, y)
    assert z.se == pytest.approx(res.se / (1 - res.ccc**2))  # var(Z) = var(rc) / (1 - rc^2)^2


def test_ccc_z_interval_covers_the_population_value():
    # Bivariate normal, means 0 and 0.3, sds 1 and 1.2, correlation 0.8:
    # rho_c = 2 * 0.8 * 1.2 / (1 + 1.44 + 0.09).
    rho_c = 2 * 0.8 * 1.2 / (1 + 1.44 + 0.09)
    cov = [[1.0, 0.8 * 1.2], [0.8 * 1.2, 1.44]]
    rng = np.random.default_rng(2021)
    hits, reps = 0, 1500
    for _ in range(reps):
        xy = rng.multivariate_normal([0.0, 0.3], cov, size=40)
        res = st.lins_ccc(xy[:, 0], xy[:, 1])
        hits += res.ci_low <= rho_c <= res.ci_high
    assert 0.93 <= hits / reps <= 0.97


def test_ccc_edge_cases():
    perfect = st.lins_ccc([1.0, 2.0, 4.0], [1.0, 2.0, 4.0])
    assert (perfect.ccc, perfect.ci_low, perfect.ci_high) == (1.0, 1.0, 1.0)
    shifted = st.lins_ccc([1.0, 2.0, 4.0, 5.0], [2.0, 3.0, 5.0, 6.0])
    assert shifted.pearson_r == pytest.approx(1.0) and shifted.ccc < 1.0  # bias lowers rho_c, not r
    assert math.isnan(st.lins_ccc([1.0, 2.0], [1.0, 2.0]).ccc)  # n < 3
    assert math.isnan(st.lins_ccc([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).ccc)  # no variance
    dropped = st.lins_ccc([1.0, 2.0, np.nan, 4.0, 5.0, 3.0], [2.0, 2.0, 9.0, 5.0, 4.0, 4.0])
    assert dropped.n == 5 and dropped.ccc == pytest.approx(7 / 9)
    with pytest.raises(InputError):
        st.lins_ccc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ci="bootstrap")


def test_ccc_cube_root():
    pred = np.array([1.0, 8.0, 27.0, 64.0, 30.0])
    true = np.array([2.0, 7.0, 30.0, 50.0, 33.0])
    assert st.ccc_cube_root(pred, true) == st.lins_ccc(np.cbrt(pred), np.cbrt(true))
    assert st.ccc_cube_root(pred, true).ccc != pytest.approx(st.lins_ccc(pred, true).ccc)


@pytest.mark.parametrize(("value", "label"), [
    (0.822, "excellent"), (0.7001, "excellent"), (0.70, "moderate"), (0.685, "moderate"),
    (0.50, "moderate"), (0.4999, "low"), (-0.2, "low"), (math.nan, "undefined"),
])
def test_agreement_label_cut_offs(value, label):
    assert st.agreement_label(value) == label


# --- tables ----------------------------------------------------------------------------


def _per_case(seed=0, n=12):
    rng = np.random.default_rng(seed)
    rows = []
    for target in ("ischemic_core", "tissue_at_risk"):
        true_ml = rng.gamma(2.0, 20.0, n)
        for approach, (gain, noise, dice) in {"thresholding": (1.3, 10, 0.45), "separate": (1.1, 8, 0.5),
                                              "pretraining": (1.0, 5, 0.6)}.items():
            pred_ml = np.maximum(gain * true_ml + rng.normal(0, noise, n), 0)
            for i in range(n):
                rows.append({"participant_id": f"sub-{i:03d}", "target": target, "approach": approach,
                             "fold": i % 5, "auc": float(np.clip(rng.normal(0.85 + 0.05 * (dice > 0.5), 0.05), 0, 1)),
                             "dice": float(np.clip(rng.normal(dice, 0.1), 0, 1)),
                             "volume_pred_ml": pred_ml[i], "volume_true_ml": true_ml[i],
                             "volume_diff_ml": pred_ml[i] - true_ml[i],
                             "abs_volume_diff_ml": abs(pred_ml[i] - true_ml[i])})
    return pd.DataFrame(rows)


def test_summary_table_rows_order_and_values():
    df = _per_case()
    table = st.summary_table(df)
    assert tuple(table.columns) == st.SUMMARY_COLUMNS
    assert len(table) == 2 * 3 * len(st.SUMMARISED_METRICS)
    assert table["target"].iloc[0] == "tissue_at_risk" and table["target"].iloc[-1] == "ischemic_core"
    assert list(dict.fromkeys(table["approach"])) == ["pretraining", "separate", "thresholding"]
    row = table[(table.target == "ischemic_core") & (table.approach == "separate") & (table.metric == "dice")].iloc[0]
    cell = df[(df.target == "ischemic_core") & (df.approach == "separate")]["dice"]
    assert (row["n"], row["median"], row["q1"], row["q3"]) == pytest.approx(
        (12, cell.median(), cell.quantile(0.25), cell.quantile(0.75)))


def test_comparisons_table_against_direct_tests_and_statsmodels():
    df = _per_case(1)
    df = df[~((df.approach == "separate") & (df.participant_id == "sub-004"))]  # one unmatched patient
    df.loc[(df.approach == "pretraining") & (df.participant_id == "sub-007") & (df.target == "ischemic_core"),
           "auc"] = np.nan
    table = st.comparisons_table(df, alpha=0.05)
    assert tuple(table.columns) == st.COMPARISON_COLUMNS
    assert len(table) == 2 * 4 * 2
    assert list(table["comparison"].iloc[:2]) == ["pretraining_vs_separate", "pretraining_vs_thresholding"]
    row = table[(table.target == "ischemic_core") & (table.metric == "auc")
                & (table.comparison == "pretraining_vs_separate")].iloc[0]
    core = df[df.target == "ischemic_core"]
    a = core[core.approach == "pretraining"].set_index("participant_id")["auc"]
    b = core[core.approach == "separate"].set_index("participant_id")["auc"]
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    assert row["n_pairs"] == len(both) == 10
    ref = stats.wilcoxon(both.iloc[:, 0], both.iloc[:, 1], zero_method="pratt", method="asymptotic", correction=False)
    assert row["p"] == pytest.approx(ref.pvalue) and row["statistic"] == pytest.approx(ref.statistic)
    for target, fam in table.groupby("target"):
        np.testing.assert_allclose(fam["p_bh"], multipletests(fam["p"], method="fdr_bh")[1])
    assert (table["significant"] == (table["p_bh"] <= 0.05)).all()
    everything = st.comparisons_table(df, family="all")
    np.testing.assert_allclose(everything["p_bh"], multipletests(everything["p"], method="fdr_bh")[1])
    assert (everything["significant"] == (everything["p_bh"] <= st.SIGNIFICANCE_LEVEL)).all()
    with pytest.raises(InputError):
        st.comparisons_table(pd.concat([df, df.iloc[:1]]))


def test_concordance_table_uses_cube_roots():
    df = _per_case(2)
    table = st.concordance_table(df)
    assert tuple(table.columns) == st.CONCORDANCE_COLUMNS
    assert len(table) == 6
    cell = df[(df.target == "tissue_at_risk") & (df.approach == "thresholding")]
    res = st.ccc_cube_root(cell.volume_pred_ml, cell.volume_true_ml)
    row = table[(table.target == "tissue_at_risk") & (table.approach == "thresholding")].iloc[0]
    assert (row["ccc"], row["ci_low"], row["ci_high"]) == pytest.approx((res.ccc, res.ci_low, res.ci_high))
    assert row["agreement"] == st.agreement_label(res.ccc)
    asym = st.concordance_table(df, ci="asymptotic")
    assert asym["ccc"].tolist() == pytest.approx(table["ccc"].tolist())


def test_mismatch_summary_against_direct_wilcoxon():
    rng = np.random.default_rng(4)
    rows = []
    for group in ("major", "minimal"):
        for i in range(15):
            base = rng.gamma(2, 2)
            for approach, factor in (("thresholding", 1.8), ("pretraining", 1.0)):
                rows.append({"participant_id": f"sub-{i:02d}", "reperfusion_group": group, "approach": approach,
                             "tissue_at_risk_ml": 1.0, "core_ml": 1.0,
                             "mismatch_ratio": min(20.0, base * factor + rng.normal(0, 0.3) ** 2)})
    mm = pd.DataFrame(rows)
    table = st.mismatch_summary(mm)
    assert tuple(table.columns) == st.MISMATCH_SUMMARY_COLUMNS
    assert list(table["reperfusion_group"]) == ["minimal", "minimal", "major", "major"]
    assert list(table["approach"]) == ["pretraining", "thresholding"] * 2
    ref_row = table.iloc[1]
    assert ref_row["compared_with"] is None and math.isnan(ref_row["p"])
    sub = mm[mm.reperfusion_group == "minimal"]
    x = sub[sub.approach == "pretraining"].sort_values("participant_id")["mismatch_ratio"]
    y = sub[sub.approach == "thresholding"].sort_values("participant_id")["mismatch_ratio"]
    ref = stats.wilcoxon(x.to_numpy(), y.to_numpy(), zero_method="pratt", method="asymptotic", correction=False)
    assert table.iloc[0]["p"] == pytest.approx(ref.pvalue)
    assert table.iloc[0]["median"] == pytest.approx(x.median())


# --- writing ---------------------------------------------------------------------------


def test_write_tsv_is_byte_stable_and_formats_fixed(tmp_path):
    df = pd.DataFrame({"b": [1.0 / 3.0, -0.0, np.nan], "a": ["x", "y", "z"], "flag": [True, False, True]})
    path = tmp_path / "t.tsv"
    st.write_tsv(df, path, columns=["a", "b", "flag"])
    text = path.read_bytes()
    assert text == b"a\tb\tflag\nx\t0.333333\tTrue\ny\t0\tFalse\nz\tn/a\tTrue\n"
    st.write_tsv(df, path, columns=["a", "b", "flag"])
    assert path.read_bytes() == text
    back = st.read_tsv(path)
    assert math.isnan(back["b"].iloc[2]) and back["a"].tolist() == ["x", "y", "z"]
    assert not list(tmp_path.glob(".t.*"))  # no temporary left behind
    with pytest.raises(InputError):
        st.write_tsv(df, path, columns=["a", "missing"])


def test_tables_are_deterministic_through_a_round_trip(tmp_path):
    df = _per_case(3)
    for name, build in {"summary": st.summary_table, "comparisons": st.comparisons_table,
                        "concordance": st.concordance_table}.items():
        st.write_tsv(build(df), tmp_path / f"{name}1.tsv")
        st.write_tsv(build(df.sample(frac=1.0, random_state=1)), tmp_path / f"{name}2.tsv")  # row order of input
        assert (tmp_path / f"{name}1.tsv").read_bytes() == (tmp_path / f"{name}2.tsv").read_bytes()


# --- Markdown --------------------------------------------------------------------------


def test_format_helpers():
    assert st.format_median_iqr(0.92, 0.89, 0.95) == "0.92 (0.89–0.95)"
    assert st.format_median_iqr(2.7, 2.0, 5.4, 1) == "2.7 (2.0–5.4)"
    assert st.format_median_iqr(np.nan, 1, 2) == "n/a"
    assert [st.format_p(p) for p in (0.0004, 0.008, 0.0712, 0.999, np.nan)] == ["<.001", ".008", ".071", ">.99", "n/a"]


def test_markdown_layouts():
    summary = pd.DataFrame([
        {"target": "tissue_at_risk", "approach": "pretraining", "metric": "auc", "n": 33, "median": 0.92, "q1": 0.89,
         "q3": 0.95},
        {"target": "tissue_at_risk", "approach": "pretraining", "metric": "dice", "n": 33, "median": 0.60, "q1": 0.43,
         "q3": 0.70},
    ], columns=list(st.SUMMARY_COLUMNS))
    md = st.to_markdown(summary)
    assert "| Tissue at risk | Pretraining | 33 | 0.92 (0.89–0.95) | 0.60 (0.43–0.70) |" in md
    conc = pd.DataFrame([{"target": "tissue_at_risk", "approach": "pretraining", "n": 33, "ccc": 0.822,
                          "ci_low": 0.725, "ci_high": 0.919, "agreement": "excellent"}])
    assert "| Tissue at risk | Pretraining | 33 | 0.822 (0.725–0.919) | excellent |" in st.to_markdown(conc)
    comp = st.comparisons_table(_per_case(5))
    md = st.to_markdown(comp)
    assert md.count("\n") == len(comp) + 2 and "Pretraining vs Separate" in md
    plain = st.to_markdown(pd.DataFrame({"a": [1.5, np.nan]}))
    assert plain == "| a |\n|---|\n| 1.5 |\n| n/a |\n"
