"""Jobs of workflow/rules/evaluation.smk: per-case metrics and mismatch ratios, the
statistics tables, the result figures (METHOD.md sections 8-9).

The rule gives every folder and file read here (preprocessed participants, each model's
predictions, the thresholding maps, the cohort table, the folds); :class:`Inputs` refuses a
path outside them, so Snakemake sees every input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from tissuefate import statistics as st
from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.tables import write_tsv
from tissuefate.metrics import (
    MISMATCH_COLUMNS, PER_CASE_COLUMNS, lesion_volume_ml, mismatch_frame, mismatch_row, per_case_frame,
    per_case_row, predicted_lesion, voxel_volume_ml,
)
from tissuefate.names import APPROACHES, PRETRAINING, TARGETS, THRESHOLDING
from tissuefate.reporting.costs import cost_table, read_benchmarks, rule_stages
from tissuefate.reporting.figures import mismatch_figure, overlay_figure, save_figure, volume_agreement_grid
from tissuefate.splits import fold_prediction_labels, load_splits


@dataclass(frozen=True)
class Inputs:
    """The derivatives a rule gives: preprocessed participant folders, prediction folders
    (one per model) and thresholding maps."""

    results: Path
    declared: frozenset

    @classmethod
    def of(cls, preprocessed, predictions=(), thresholding=()) -> "Inputs":
        results = derivatives.common_results_root(preprocessed)
        return cls(results, frozenset(Path(p) for p in [*preprocessed, *predictions, *thresholding]))

    def _check(self, path: Path) -> Path:
        if path not in self.declared and path.parent not in self.declared:
            raise InputError("the job reads a file its rule does not give", path=path,
                             fix="add it to the rule's input")
        return path

    def probability(self, approach: str, target: str, fold: int, label: str) -> Path:
        return self._check(derivatives.probability_map(self.results, approach, target, fold, label))

    def final_infarct(self, label: str) -> Path:
        return self._check(derivatives.final_infarct_mask(self.results, label))

    def coverage(self, label: str) -> Path:
        return self._check(derivatives.preproc_mask(self.results, label, "coverage"))

    def stroke_side(self, label: str) -> str:
        return json.loads(self._check(derivatives.preproc_summary(self.results, label)).read_text())["stroke_side"]

    def dwi(self, label: str) -> Path:
        return self._check(derivatives.preproc_map(self.results, label, "DWI", "normalized"))


def _load(path) -> tuple:
    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def metrics(cohort_tsv, splits_json, preprocessed, predictions, thresholding, per_case_tsv, mismatch_tsv,
            evaluation: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule metrics: results/metrics/per_case.tsv and mismatch.tsv (METHOD.md section 8).
    ``evaluation``: the config's ``evaluation:`` section (probability threshold, ratio cap)."""
    inputs = Inputs.of(preprocessed, predictions, thresholding)
    cap = float(evaluation["mismatch_ratio_cap"])
    threshold = float(evaluation["probability_threshold"])
    splits = load_splits(splits_json)
    cohort = pd.read_csv(cohort_tsv, sep="\t", keep_default_na=False)
    group_of = dict(zip(cohort["participant_id"], cohort["reperfusion_group"]))
    n_folds = len(splits[TARGETS[0]]["folds"])

    rows, mismatch_rows = [], []
    for target in TARGETS:
        for fold in range(1, n_folds + 1):
            own, _ = fold_prediction_labels(splits, target, fold)
            for label in own:
                truth, affine = _load(inputs.final_infarct(label))
                coverage, _ = _load(inputs.coverage(label))
                side = inputs.stroke_side(label)
                for approach in APPROACHES:
                    prob, _ = _load(inputs.probability(approach, target, fold, label))
                    rows.append(per_case_row(participant_id=f"sub-{label}", target=target, approach=approach,
                                             fold=fold, probability=prob, truth=truth > 0.5,
                                             coverage=coverage > 0.5, side=side, affine=affine,
                                             threshold=threshold))
                # Mismatch: this patient's own target and the other target's cross-applied model.
                for approach in APPROACHES:
                    volumes = {}
                    for t in TARGETS:
                        prob, aff = _load(inputs.probability(approach, t, fold, label))
                        volumes[t] = lesion_volume_ml(predicted_lesion(prob, coverage > 0.5, threshold),
                                                      voxel_volume_ml(aff))
                    mismatch_rows.append(mismatch_row(
                        participant_id=f"sub-{label}", reperfusion_group=group_of.get(f"sub-{label}", "n/a"),
                        approach=approach, tissue_at_risk_ml=volumes["tissue_at_risk"],
                        core_ml=volumes["ischemic_core"], cap=cap))
    per_case = per_case_frame(rows)
    mismatch = mismatch_frame(mismatch_rows)
    write_tsv(per_case, per_case_tsv, columns=PER_CASE_COLUMNS)
    write_tsv(mismatch, mismatch_tsv, columns=MISMATCH_COLUMNS)
    return per_case, mismatch


TABLE_TITLES = {  # one per derivatives.RESULT_TABLES
    "summary": "Per-case metrics: median (IQR) per target and approach",
    "comparisons": "Paired Wilcoxon signed-rank tests, Benjamini-Hochberg adjusted",
    "concordance": "Lin's concordance of predicted and true volumes (cube root)",
    "mismatch_summary": "Mismatch ratio (tissue at risk / core) per reperfusion group",
}


def statistics(per_case_tsv, mismatch_tsv, out_tsv: dict, out_md: dict, settings: dict) -> dict[str, pd.DataFrame]:
    """Rule statistics: summary, comparisons, concordance, mismatch_summary (``out_tsv``,
    ``out_md``: table name -> path; ``settings``: the config's ``statistics:``)."""
    per_case = st.read_tsv(per_case_tsv)
    mismatch = st.read_tsv(mismatch_tsv)
    tables = {
        "summary": (st.summary_table(per_case), st.SUMMARY_COLUMNS),
        "comparisons": (st.comparisons_table(per_case, family=settings["bh_family"],
                                             alpha=float(settings["significance_alpha"])),
                        st.COMPARISON_COLUMNS),
        "concordance": (st.concordance_table(per_case, ci=settings["ccc_ci"]), st.CONCORDANCE_COLUMNS),
        "mismatch_summary": (st.mismatch_summary(mismatch), st.MISMATCH_SUMMARY_COLUMNS),
    }
    for name, (table, columns) in tables.items():
        st.write_tsv(table, out_tsv[name], columns=columns)
        st.write_markdown(table, out_md[name], title=TABLE_TITLES[name])
    return {k: v[0] for k, v in tables.items()}


def overlay_background(results, label: str) -> tuple:
    """The Fig 3 background of one participant: the follow-up FLAIR in MNI space as in the
    paper, else (no follow-up FLAIR) the baseline DWI. Returns (volume, what it is)."""
    flair = derivatives.flair_map(results, label, "final")
    if flair.exists():
        return _load(flair)[0], "follow-up FLAIR"
    return _load(derivatives.preproc_map(results, label, "DWI", "normalized"))[0], "baseline DWI (no follow-up FLAIR)"


def figures(per_case_tsv, mismatch_tsv, splits_json, preprocessed, predictions, thresholding, out_dir,
            probability_threshold: float) -> list[Path]:
    """Rule figures: Bland-Altman and predicted-vs-true volume grids, a Fig 3-style overlay per
    target and a Fig 4-style mismatch example."""
    inputs = Inputs.of(preprocessed, predictions, thresholding)
    out_dir = Path(out_dir)
    per_case = st.read_tsv(per_case_tsv)
    mismatch = st.read_tsv(mismatch_tsv)
    splits = load_splits(splits_json)
    written = []
    for kind in ("bland_altman", "scatter"):
        path = out_dir / f"volumes_{kind}.png"
        save_figure(volume_agreement_grid(per_case, kind=kind), path)
        written.append(path)

    def lesion(approach, target, fold, label, coverage):
        return (_load(inputs.probability(approach, target, fold, label))[0] >= probability_threshold) & coverage

    # Overlay: the test patient with the median pretraining Dice of each target.
    for target in TARGETS:
        rows = per_case[(per_case.target == target) & (per_case.approach == PRETRAINING)].dropna(subset=["dice"])
        if rows.empty:
            continue
        rows = rows.sort_values(["dice", "participant_id"]).reset_index(drop=True)
        row = rows.iloc[len(rows) // 2]
        label, fold = row.participant_id.removeprefix("sub-"), int(row.fold)
        inputs.dwi(label)  # the background lies in the participant's declared folder
        background, background_label = overlay_background(inputs.results, label)
        truth, _ = _load(inputs.final_infarct(label))
        coverage = _load(inputs.coverage(label))[0] > 0.5
        predictions_of = {a: lesion(a, target, fold, label, coverage) for a in APPROACHES}
        fig = overlay_figure(background, truth > 0.5, predictions_of, background_label=background_label,
                             title=f"{target.replace('_', ' ')}: sub-{label} (fold {fold}); "
                                   f"green TP, blue FN, red FP over the {background_label}")
        path = out_dir / f"overlay_{target}.png"
        save_figure(fig, path)
        written.append(path)

    # Mismatch example: the patient with the largest pretraining mismatch ratio.
    pre = mismatch[mismatch.approach == PRETRAINING].dropna(subset=["mismatch_ratio"])
    if not pre.empty:
        row = pre.sort_values(["mismatch_ratio", "participant_id"], ascending=[False, True]).iloc[0]
        label = row.participant_id.removeprefix("sub-")
        fold = next(k + 1 for t in TARGETS for k, f in enumerate(splits[t]["folds"]) if row.participant_id in f["test"])
        background, _ = _load(inputs.dwi(label))
        coverage = _load(inputs.coverage(label))[0] > 0.5
        panels = {}
        for approach in (PRETRAINING, THRESHOLDING):
            tar = lesion(approach, "tissue_at_risk", fold, label, coverage)
            core = lesion(approach, "ischemic_core", fold, label, coverage)
            ratio = float(mismatch[(mismatch.participant_id == row.participant_id)
                                   & (mismatch.approach == approach)]["mismatch_ratio"].iloc[0])
            panels[approach] = (tar, core, ratio)
        path = out_dir / "mismatch_example.png"
        save_figure(mismatch_figure(background, panels, title=f"sub-{label} ({row.reperfusion_group} reperfusion)"), path)
        written.append(path)
    return written


def rule_costs(benchmarks_dir, rules_dir, out_rules, out_stages, logs_dir=None) -> pd.DataFrame:
    """Rule costs: wall s, CPU s and peak RSS per rule and per stage (rule file) from the
    ``benchmark:`` files below ``benchmarks_dir``, CPU seconds from the jobs' own accounts at
    the end of their logs below ``logs_dir`` where they have one (tissuefate.reporting.costs)."""
    jobs = read_benchmarks(benchmarks_dir, logs_dir)
    jobs["stage"] = jobs["rule"].map(rule_stages(rules_dir)).fillna("?")
    by_rule = cost_table(jobs, "rule")
    write_tsv(by_rule, out_rules)
    write_tsv(cost_table(jobs, "stage"), out_stages)
    return by_rule
