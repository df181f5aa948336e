import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tissuefate.table1 import categorical_p, continuous_p, fisher_freeman_halton, format_p, table1


def _cohort(seed=3, n=80):
    rng = np.random.default_rng(seed)
    groups = rng.choice(["minimal", "partial", "major", "unknown"], size=n, p=[0.22, 0.24, 0.34, 0.2])
    return pd.DataFrame({
        "participant_id": [f"sub-{i:03d}" for i in range(n)],
        "included": True,
        "reperfusion_group": groups,
        "sex": rng.choice(["M", "F"], size=n),
        "age": rng.normal(66, 16, n).round(),
        "hypertension": rng.choice(["yes", "no"], size=n, p=[0.67, 0.33]),
        "diabetes": rng.choice(["yes", "no"], size=n, p=[0.1, 0.9]),
        "treatment": rng.choice(["iv_tpa_only", "direct_thrombectomy", "bridging", "none"], size=n),
        "nihss_baseline": rng.integers(2, 30, n),
        "tmax_baseline_ml": rng.lognormal(4.7, 0.6, n),
    })


def _p(table, variable):
    return table.loc[table["variable"] == variable].iloc[0]


def test_kruskal_wallis_matches_scipy():
    cohort = _cohort()
    t = table1(cohort)
    samples = [cohort.loc[cohort.reperfusion_group == g, "age"] for g in ("minimal", "major", "partial", "unknown")]
    expected = stats.kruskal(*samples).pvalue
    assert _p(t, "Age (yr)")["p"] == format_p(expected)
    assert continuous_p([s.to_numpy() for s in samples]) == pytest.approx(expected)


def test_chi_square_matches_scipy_when_expected_counts_allow():
    cohort = _cohort(n=240)
    groups = ("minimal", "major", "partial", "unknown")
    hit = [int(((cohort.reperfusion_group == g) & (cohort.hypertension == "yes")).sum()) for g in groups]
    size = [int((cohort.reperfusion_group == g).sum()) for g in groups]
    table = np.array([hit, np.subtract(size, hit)])
    p, test = categorical_p(table)
    assert test == "chi2"
    assert p == pytest.approx(stats.chi2_contingency(table, correction=False)[1])
    assert _p(table1(cohort), "Hypertension")["p"] == format_p(p)


def test_small_counts_switch_to_fisher_exact():
    table = np.array([[3, 1], [1, 3]])
    p, test = categorical_p(table)
    assert test == "fisher"
    assert p == pytest.approx(stats.fisher_exact(table)[1])


@pytest.mark.parametrize("table", [[[8, 2], [1, 5]], [[0, 5], [6, 1]], [[10, 10], [10, 10]]])
def test_fisher_freeman_halton_equals_fisher_exact_on_2x2(table):
    assert fisher_freeman_halton(table) == pytest.approx(stats.fisher_exact(np.array(table))[1], rel=1e-9)


def test_monte_carlo_agrees_with_exact_enumeration():
    two_by_four = np.array([[3, 1, 4, 0], [2, 5, 1, 6]])
    exact = fisher_freeman_halton(two_by_four)
    # The same table with a third, empty-free row forces the Monte Carlo path; compare on a
    # 2 x k table by transposing (k x 2, rows > 2).
    mc = fisher_freeman_halton(two_by_four.T)
    assert mc == pytest.approx(exact, abs=0.01)


def test_counts_and_percentages():
    cohort = _cohort()
    t = table1(cohort)
    n_male = int((cohort.sex == "M").sum())
    assert _p(t, "Male")["all"] == f"{n_male} ({round(100 * n_male / len(cohort))})"
    assert t.iloc[0]["all"] == str(len(cohort))


def test_excluded_patients_are_left_out():
    cohort = _cohort()
    cohort.loc[:9, "included"] = False
    assert table1(cohort).iloc[0]["all"] == str(len(cohort) - 10)


@pytest.mark.parametrize("p, text", [(0.0004, "<.001"), (0.004, ".004"), (0.012, ".01"), (0.3, ".3"), (0.06, ".06")])
def test_p_value_format_follows_the_paper(p, text):
    assert format_p(p) == text
