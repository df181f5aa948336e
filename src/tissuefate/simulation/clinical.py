"""The simulated cohort's plan: who is in which group, who must be excluded and why, and
clinical variables sampled to resemble the paper's Table (Yu et al. 2021)."""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = ("minimal", "partial", "major", "unknown")
# Paper: 237 included = 52 minimal, 57 partial, 80 major, 48 unknown.
PAPER_GROUP_COUNTS = {"minimal": 52, "partial": 57, "major": 80, "unknown": 48}
EXCLUSION_REASONS = (
    "no_confirmed_stroke",
    "no_baseline_pwi_dwi",
    "no_usable_followup",
    "complete_reperfusion_at_baseline",
)

# Per group: male %, age mean/SD, hypertension %, diabetes %, dyslipidemia %, AF %,
# treatment % (IV tPA only, direct thrombectomy, bridging, none), onset-to-treatment
# median/IQR (h), NIHSS median/IQR, symptomatic haemorrhage %, 90-day mRS median/IQR.
PAPER_TABLE = {
    "minimal": dict(male=52, age=(64, 16), htn=75, dm=27, dlp=46, af=23, tx=(48, 15, 25, 12),
                    ott=(5.8, 5.2, 6.3), nihss=(13, 8, 19), sich=13, mrs=(3, 2, 4)),
    "major": dict(male=49, age=(66, 16), htn=63, dm=23, dlp=38, af=34, tx=(22, 36, 39, 3),
                  ott=(5.8, 4.6, 7.8), nihss=(15, 9, 19), sich=10, mrs=(2, 1, 3)),
    "partial": dict(male=44, age=(69, 14), htn=68, dm=26, dlp=53, af=37, tx=(37, 28, 28, 7),
                    ott=(5.4, 4.6, 6.4), nihss=(16, 10, 19), sich=14, mrs=(4, 2, 5)),
    "unknown": dict(male=35, age=(64, 17), htn=65, dm=23, dlp=28, af=28, tx=(31, 19, 35, 15),
                    ott=(5.8, 4.9, 7.7), nihss=(14, 11, 19), sich=8, mrs=(3, 1, 4)),
}
TREATMENTS = ("iv_tpa_only", "direct_thrombectomy", "bridging", "none")

# Reperfusion-rate targets (percent), kept clear of the 20 % and 80 % boundaries so that
# resampling to native grids cannot move a patient across a group boundary.
RATE_RANGES = {"minimal": (-10.0, 12.0), "partial": (30.0, 70.0), "major": (88.0, 99.0)}


# The plan's follow-up kinds: the study tests only patients with a 3-7 day FLAIR (METHOD.md);
# the others (a 30-day FLAIR) are used for training only.
TEST_FOLLOWUP = "flair_3to7d"
OTHER_FOLLOWUP = "flair_30d"


def participant_labels(sim_cfg: dict) -> list[str]:
    """Labels of the simulated participants, known from the config alone (no I/O)."""
    n = int(sim_cfg["n_included"]) + sum(int(v) for v in sim_cfg["n_excluded"].values())
    width = max(3, len(str(n)))
    return [f"{i + 1:0{width}d}" for i in range(n)]


def allocate(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder allocation of ``n`` items in proportion to ``weights``."""
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(np.floor(v)) for k, v in exact.items()}
    order = sorted(exact, key=lambda k: (-(exact[k] - counts[k]), list(weights).index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _yes_no(rng, percent: float) -> str:
    return "yes" if rng.random() < percent / 100.0 else "no"


def _median_iqr(rng, median: float, q1: float, q3: float, low: float, high: float) -> float:
    # Normal with the IQR's spread (IQR = 1.349 SD), skewed by using each half's own spread.
    z = rng.standard_normal()
    spread = (q3 - median) if z > 0 else (median - q1)
    return float(np.clip(median + z * spread / 0.6745, low, high))


def sample_clinical(rng: np.random.Generator, group: str) -> dict:
    t = PAPER_TABLE.get(group, PAPER_TABLE["partial"])
    treatment = TREATMENTS[int(rng.choice(4, p=np.asarray(t["tx"]) / sum(t["tx"])))]
    ott = _median_iqr(rng, *t["ott"], low=1.0, high=23.0)
    return {
        "sex": "M" if rng.random() < t["male"] / 100 else "F",
        "age": int(round(np.clip(rng.normal(*t["age"]), 18, 99))),
        "hypertension": _yes_no(rng, t["htn"]),
        "diabetes": _yes_no(rng, t["dm"]),
        "dyslipidemia": _yes_no(rng, t["dlp"]),
        "atrial_fibrillation": _yes_no(rng, t["af"]),
        "treatment": treatment,
        "onset_to_treatment_h": round(ott, 1) if treatment != "none" else np.nan,
        "nihss_baseline": int(round(_median_iqr(rng, *t["nihss"], low=0, high=42))),
        "symptomatic_hemorrhage": _yes_no(rng, t["sich"]),
        "mrs_90d": int(round(_median_iqr(rng, *t["mrs"], low=0, high=6))),
    }


# Per group, paper Table 1: baseline DWI and Tmax > 6 s lesion volumes, median (IQR), mL.
PAPER_VOLUMES = {
    "minimal": dict(dwi=(20, 6, 63), tmax=(98, 48, 158)),
    "major": dict(dwi=(17, 6, 43), tmax=(115, 71, 160)),
    "partial": dict(dwi=(31, 16, 83), tmax=(126, 66, 188)),
    "unknown": dict(dwi=(31, 13, 61), tmax=(123, 80, 171)),
}
VOLUME_CORRELATION = 0.8  # of log DWI and log Tmax volumes (large cores come with large hypoperfusion)
CORE_PER_ADC_VOLUME = 1.35
# Without reperfusion, the share f0 of the penumbra that dies: scale x (1 - 0.9 c) x lognormal.
PENUMBRA_LOSS_SCALE = 0.75
PENUMBRA_LOSS_LOG_SD = 1.2
# Growth before reperfusion g ~ Beta(a, b), a share of the penumbra.
EARLY_GROWTH_BETA = (0.5, 2.0)
# The lesion's ADC drop varies between patients: a factor exp(sd N(0, 1)) on it (0: none).
ADC_DROP_LOG_SD = 0.0
MISMATCH_MIN = 1.5  # Tmax > 6 s volume at least this times the DWI volume


def _log_quantile(z: float, median: float, q1: float, q3: float) -> float:
    """Split log-normal with the given median and quartiles, at standard normal deviate z."""
    spread = np.log(q3 / median) if z > 0 else np.log(median / q1)
    return float(median * np.exp(z * spread / 0.6745))


# The lesion variables that a reperfusion group's patients draw from one Latin hypercube when
# simulation.sampling is "stratified" (docs/simulation.md, "Calibration across seeds"): each variable's n quantiles
# fall one in each of n equal strata, so a small cohort spans the calibrated distributions
# instead of landing, by chance, in one part of them.
STRATIFIED_VARIABLES = ("dwi", "tmax", "collateral", "penumbra", "growth", "reperfusion")


def group_quantiles(groups: list[str], seed: int) -> dict[int, dict[str, float]]:
    """Per patient (position in ``groups``), a quantile in (0, 1) for each stratified variable:
    within each reperfusion group, a Latin hypercube over the group's patients."""
    out: dict[int, dict[str, float]] = {}
    for gi, group in enumerate(GROUPS):
        members = [i for i, g in enumerate(groups) if g == group]
        if not members:
            continue
        rng = np.random.default_rng([seed, 4, gi])
        n = len(members)
        columns = {name: (rng.permutation(n) + rng.random(n)) / n for name in STRATIFIED_VARIABLES}
        for k, i in enumerate(members):
            out[i] = {name: float(columns[name][k]) for name in STRATIFIED_VARIABLES}
    return out


def _normal(rng: np.random.Generator, q: dict | None, name: str) -> float:
    """A standard normal deviate: drawn, or at the patient's stratified quantile."""
    if q is None:
        return float(rng.standard_normal())
    from scipy.special import ndtri

    return float(ndtri(q[name]))


def _beta(rng: np.random.Generator, q: dict | None, name: str, a: float, b: float) -> float:
    if q is None:
        return float(rng.beta(a, b))
    from scipy.special import betaincinv

    return float(betaincinv(a, b, q[name]))


def _uniform(rng: np.random.Generator, q: dict | None, name: str, low: float, high: float) -> float:
    if q is None:
        return float(rng.uniform(low, high))
    return float(low + q[name] * (high - low))


def sample_volumes(rng: np.random.Generator, group: str, q: dict | None = None) -> tuple[float, float]:
    """Baseline DWI and Tmax > 6 s volumes (mL) drawn from the paper's per-group quartiles
    (``q``: the patient's stratified quantiles, else independent draws from ``rng``)."""
    v = PAPER_VOLUMES.get(group, PAPER_VOLUMES["partial"])
    z1 = _normal(rng, q, "dwi")
    z2 = VOLUME_CORRELATION * z1 + np.sqrt(1 - VOLUME_CORRELATION**2) * _normal(rng, q, "tmax")
    dwi = float(np.clip(_log_quantile(z1, *v["dwi"]), 1.0, 150.0))
    tmax = float(np.clip(_log_quantile(z2, *v["tmax"]), 10.0, 300.0))
    return dwi, max(tmax, MISMATCH_MIN * dwi + 5.0)


def pick_lesion(volume_ml: float, used: set[int]) -> int:
    """The library lesion closest in log-volume to ``volume_ml``, unused in this cohort if possible."""
    from tissuefate.simulation.library import load_library

    lib = load_library()
    order = np.argsort(np.abs(np.log(lib.volume_ml) - np.log(volume_ml)), kind="stable")
    for i in order[:12]:
        if int(i) not in used:
            return int(i)
    return int(order[0])


def occluded_artery(lesion_index: int, tmax_ml: float) -> tuple[str, float]:
    """The lesion's artery, taken more proximal until the Tmax volume fits 80 % of its territory."""
    from tissuefate.simulation.library import PROXIMAL, artery_labels, load_atlas_2mm, load_library

    artery = str(load_library().artery[lesion_index])
    atlas = load_atlas_2mm()
    while True:
        capacity = 0.8 * np.isin(atlas, artery_labels(artery, "left")).sum() * 0.008
        if tmax_ml <= capacity or PROXIMAL[artery] == artery:
            return artery, float(min(tmax_ml, capacity))
        artery = PROXIMAL[artery]


def reperfusion_of(prng: np.random.Generator, group: str, q: dict | None = None) -> tuple[float, float]:
    """Target 4-24 h reperfusion rate (percent) and the reperfusion fraction r driving the infarct."""
    if group == "minimal":
        rate = _uniform(prng, q, "reperfusion", *RATE_RANGES["minimal"])
        return rate, float(np.clip(rate / 100.0, 0, 0.15))
    if group == "partial":
        rate = _uniform(prng, q, "reperfusion", *RATE_RANGES["partial"])
        return rate, rate / 100.0
    if group == "major":
        # Half reperfuse completely, half in the upper range.
        if q is None:
            rate = 100.0 if prng.random() < 0.5 else float(prng.uniform(*RATE_RANGES["major"]))
        else:
            u = q["reperfusion"]
            low, high = RATE_RANGES["major"]
            rate = 100.0 if u < 0.5 else float(low + (2 * u - 1) * (high - low))
        return rate, min(rate / 100.0, 1.0)
    # unknown: reperfusion happened to some degree, but no 4-24 h study shows it
    return float("nan"), _uniform(prng, q, "reperfusion", 0.0, 1.0)


def lesion_plan(prng: np.random.Generator, group: str, reason: str, sim_cfg: dict, used: set[int],
                q: dict | None = None) -> dict:
    """Lesion, artery, side, collaterals, volumes and reperfusion of one planned patient
    (``q``: its stratified quantiles, see ``group_quantiles``; None: independent draws)."""
    from tissuefate.simulation.library import load_library

    lib = load_library()
    dwi_ml, tmax_ml = sample_volumes(prng, group if group != "n/a" else "partial", q)
    if reason == "complete_reperfusion_at_baseline":
        dwi_ml, tmax_ml = 2.0, 0.0
    # ADC < 620 (the paper's DWI volume) misses the lesion's rim: the library lesion is larger.
    index = pick_lesion(dwi_ml * CORE_PER_ADC_VOLUME, used)
    used.add(index)
    mirrored = bool(prng.random() < 0.5)
    hemisphere = str(lib.hemisphere[index])
    side = ("left" if hemisphere == "L" else "right") if not mirrored else ("right" if hemisphere == "L" else "left")
    if prng.random() < sim_cfg["fraction_bilateral"]:
        side = "bilateral"
    artery, tmax_ml = occluded_artery(index, tmax_ml)
    collateral = _beta(prng, q, "collateral", 2.0, 2.0)
    rate, r = reperfusion_of(prng, group, q)
    # Without reperfusion, the share of the penumbra that dies falls with collateral grade and
    # varies log-normally around it; above 1 the infarct grows beyond the Tmax > 6 s region.
    # PENUMBRA_LOSS_SCALE and _LOG_SD (and the cap 4) calibrated to the paper's minimal-reperfusion
    # final volumes and thresholding row (docs/simulation.md, "Calibration").
    penumbra_loss = float(np.clip(PENUMBRA_LOSS_SCALE * (1.0 - 0.9 * collateral)
                                 * np.exp(PENUMBRA_LOSS_LOG_SD * _normal(prng, q, "penumbra")), 0.02, 4.0))
    # Growth before reperfusion, skewed: most patients little, a few much (Wheeler et al. 2015);
    # what died before reperfusion stays dead without it.
    early_growth = _beta(prng, q, "growth", *EARLY_GROWTH_BETA)
    penumbra_loss = max(penumbra_loss, early_growth)
    reversal = float(prng.uniform(0.1, 0.6)) if (r >= 0.8 and prng.random() < 0.5) else 0.0
    return dict(
        side=side, lesion_index=index, lesion_source=str(lib.participant[index]), mirrored=mirrored,
        artery=artery, collateral=round(collateral, 4), planned_dwi_ml=round(dwi_ml, 2),
        tmax6_target_ml=round(tmax_ml, 2), penumbra_loss=round(penumbra_loss, 4),
        early_growth=round(early_growth, 4),
        reversal_fraction=round(reversal, 4), target_reperfusion_rate=rate, reperfusion_fraction=round(r, 4),
    )


def make_plan(sim_cfg: dict, seed: int) -> pd.DataFrame:
    """One row per simulated participant: intended group or exclusion, site, lesion knobs."""
    from tissuefate.simulation.protocol import SITES

    rng = np.random.default_rng([seed, 0])
    counts = allocate(int(sim_cfg["n_included"]), {g: float(PAPER_GROUP_COUNTS[g]) for g in GROUPS})
    intended = [g for g in GROUPS for _ in range(counts[g])]
    excluded = [r for r in EXCLUSION_REASONS for _ in range(int(sim_cfg["n_excluded"].get(r, 0)))]
    rows = [{"simulated_group": g, "simulated_exclusion": "n/a"} for g in intended]
    rows += [{"simulated_group": "n/a", "simulated_exclusion": r} for r in excluded]
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    width = max(3, len(str(len(rows))))
    n_other = int(round(sim_cfg["fraction_other_followup"] * len(intended)))
    other_idx = set(rng.choice([i for i, r in enumerate(rows) if r["simulated_exclusion"] == "n/a"],
                               size=min(n_other, len(intended)), replace=False).tolist()) if n_other else set()
    sampling = sim_cfg.get("sampling", "independent")
    quantiles = group_quantiles([r["simulated_group"] for r in rows], seed) if sampling == "stratified" else {}
    plan: list[dict] = []
    used: set[int] = set()
    for i, row in enumerate(rows):
        prng = np.random.default_rng([seed, 1, i])
        group = row["simulated_group"]
        entry = {
            "participant_id": f"sub-{i + 1:0{width}d}",
            "site": SITES[int(prng.integers(len(SITES)))].name,
            **row,
            **sample_clinical(prng, group if group != "n/a" else "partial"),
        }
        entry.update(lesion_plan(prng, group, row["simulated_exclusion"], sim_cfg, used, quantiles.get(i)))
        entry.update(
            onset_to_imaging_h=round(float(np.clip(prng.lognormal(np.log(5.0), 0.5), 1.0, 23.0)), 2),
            followup=OTHER_FOLLOWUP if i in other_idx else TEST_FOLLOWUP,
            ischemic_stroke_confirmed="yes",
            pwi_quality="good",
            has_baseline_perfusion=True,
            has_followup_perfusion=group in ("minimal", "partial", "major"),
            has_final=True,
        )
        apply_exclusion(entry, row["simulated_exclusion"], prng, plan)
        plan.append(entry)
    plan = pd.DataFrame(plan)
    if ADC_DROP_LOG_SD > 0:
        # The lesion's ADC drop varies between patients: a stream of its own, so that every other
        # draw stays as it is; without it the plan has no such column (cohorts byte for byte as before).
        factor = np.exp(ADC_DROP_LOG_SD * np.random.default_rng([seed, 4]).standard_normal(len(plan)))
        plan["adc_drop"] = np.where(plan["lesion_index"] >= 0, np.round(factor, 4), 1.0)
    return plan


def apply_exclusion(entry: dict, reason: str, prng: np.random.Generator, plan: list[dict]) -> None:
    """Change a planned patient so that the pipeline must exclude it for ``reason``."""
    if reason == "no_confirmed_stroke":
        # A stroke mimic: no occlusion, nothing at follow-up.
        entry.update(ischemic_stroke_confirmed="no", lesion_index=-1, lesion_source="n/a",
                     tmax6_target_ml=0.0, has_followup_perfusion=False)
    elif reason == "no_baseline_pwi_dwi":
        # Half lack the perfusion study, half have one rated poor.
        if sum(1 for e in plan if e["simulated_exclusion"] == reason) % 2 == 0:
            entry.update(has_baseline_perfusion=False)
        else:
            entry.update(pwi_quality="poor")
        entry.update(has_followup_perfusion=False)
    elif reason == "no_usable_followup":
        entry.update(has_final=False, has_followup_perfusion=bool(prng.random() < 0.5),
                     target_reperfusion_rate=float(prng.uniform(0, 100)))
    elif reason == "complete_reperfusion_at_baseline":
        # The vessel reopened before imaging: a mild delay (no Tmax > 6 s) and a small lesion.
        entry.update(tmax6_target_ml=0.0, penumbra_loss=0.0, early_growth=0.0,
                     has_followup_perfusion=False)


PARTICIPANT_COLUMNS = (
    "participant_id", "site", "sex", "age", "hypertension", "diabetes", "dyslipidemia",
    "atrial_fibrillation", "treatment", "onset_to_treatment_h", "nihss_baseline",
    "symptomatic_hemorrhage", "mrs_90d", "ischemic_stroke_confirmed", "pwi_quality",
)

PARTICIPANTS_JSON = {
    "participant_id": {"Description": "Participant label"},
    "site": {"Description": "Acquisition site (protocol)"},
    "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
    "age": {"Description": "Age at stroke", "Units": "years"},
    "hypertension": {"Description": "History of hypertension", "Levels": {"yes": "yes", "no": "no"}},
    "diabetes": {"Description": "History of diabetes mellitus", "Levels": {"yes": "yes", "no": "no"}},
    "dyslipidemia": {"Description": "History of dyslipidemia", "Levels": {"yes": "yes", "no": "no"}},
    "atrial_fibrillation": {"Description": "Atrial fibrillation", "Levels": {"yes": "yes", "no": "no"}},
    "treatment": {
        "Description": "Acute treatment",
        "Levels": {
            "iv_tpa_only": "intravenous tPA only",
            "direct_thrombectomy": "thrombectomy without tPA",
            "bridging": "intravenous tPA followed by thrombectomy",
            "none": "no reperfusion treatment",
        },
    },
    "onset_to_treatment_h": {"Description": "Time from symptom onset to treatment (n/a if untreated)", "Units": "hours"},
    "nihss_baseline": {"Description": "NIH Stroke Scale at admission", "Units": "points (0-42)"},
    "symptomatic_hemorrhage": {"Description": "Symptomatic intracranial hemorrhage", "Levels": {"yes": "yes", "no": "no"}},
    "mrs_90d": {"Description": "Modified Rankin Scale at 90 days", "Units": "points (0-6)"},
    "ischemic_stroke_confirmed": {
        "Description": "Ischemic stroke confirmed on follow-up imaging (exclusion criterion 1 if no)",
        "Levels": {"yes": "yes", "no": "no"},
    },
    "pwi_quality": {
        "Description": "Quality of the baseline perfusion study (exclusion criterion 2 if poor)",
        "Levels": {"good": "usable", "poor": "not usable"},
    },
}
