import math

import pytest

from tissuefate.reperfusion import MAJOR, MINIMAL, PARTIAL, UNKNOWN, reperfusion_group, reperfusion_rate


@pytest.mark.parametrize(
    "baseline, followup, rate",
    [(100.0, 100.0, 0.0), (100.0, 0.0, 100.0), (80.0, 100.0, -25.0), (50.0, 25.0, 50.0)],
)
def test_rate_formula(baseline, followup, rate):
    assert reperfusion_rate(baseline, followup) == pytest.approx(rate)


def test_exact_boundaries_fall_in_minimal_and_major():
    # 1 - 0.8 is 0.19999999999999996 in floating point: the rate must still be exactly 20 %.
    assert reperfusion_rate(1.0, 0.8) == 20.0
    assert reperfusion_group(reperfusion_rate(1.0, 0.8)) == MINIMAL
    assert reperfusion_group(reperfusion_rate(0.3, 0.24)) == MINIMAL
    assert reperfusion_group(reperfusion_rate(100.0, 20.0)) == MAJOR
    assert reperfusion_group(reperfusion_rate(0.7, 0.14)) == MAJOR
    assert reperfusion_group(20.0) == MINIMAL
    assert reperfusion_group(80.0) == MAJOR


def test_groups_just_inside_partial():
    assert reperfusion_group(20.000001) == PARTIAL
    assert reperfusion_group(79.999999) == PARTIAL
    assert reperfusion_group(-40.0) == MINIMAL  # the lesion grew


def test_no_followup_study_is_unknown():
    assert math.isnan(reperfusion_rate(120.0, None))
    assert math.isnan(reperfusion_rate(120.0, float("nan")))
    assert reperfusion_group(float("nan")) == UNKNOWN


def test_zero_baseline_lesion_has_no_rate():
    with pytest.raises(ValueError, match="undefined"):
        reperfusion_rate(0.0, 0.0)


def test_configurable_boundaries():
    assert reperfusion_group(25.0, minimal_max=30.0, major_min=70.0) == MINIMAL
    assert reperfusion_group(75.0, minimal_max=30.0, major_min=70.0) == MAJOR
