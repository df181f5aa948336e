"""One entry point per workflow stage that gathers several modules (the top of the
dependency graph: rules call these, nothing in the package imports this module)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tissuefate.cohort import COHORT_COLUMNS, build_cohort
from tissuefate.io.atomic import atomic_write_text
from tissuefate.io.tables import write_tsv
from tissuefate.table1 import table1, table1_markdown


def write_cohort(reviews: list[dict], participants: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """results/cohort/: participants.tsv, table1.tsv, table1.md and the flow diagram."""
    from tissuefate.reporting.figures import save_figure
    from tissuefate.reporting.flow import flow_figure

    out_dir = Path(out_dir)
    cohort = build_cohort(reviews, participants)
    clinical = [c for c in participants.columns if c not in COHORT_COLUMNS]
    write_tsv(cohort, out_dir / "participants.tsv", columns=list(COHORT_COLUMNS) + clinical)
    table = table1(cohort)
    write_tsv(table, out_dir / "table1.tsv")
    atomic_write_text(out_dir / "table1.md", table1_markdown(table))
    save_figure(flow_figure(cohort), out_dir / "flow.png")
    return cohort


def review_to_json(bids_root, label: str, participants_tsv, config: dict, out_path, maps_dir=None) -> dict:
    """Review one participant (tissuefate.cohort.review_participant) and write its row as JSON."""
    import json

    from tissuefate.cohort import read_participants, review_participant

    participants = read_participants(Path(participants_tsv).parent)
    match = participants[participants["participant_id"] == f"sub-{label}"]
    clinical = match.iloc[0].to_dict() if len(match) else {}
    row = review_participant(bids_root, label, clinical, config, maps_dir=maps_dir)
    atomic_write_text(out_path, json.dumps(row, indent=2, default=_json_default) + "\n")
    return row


def cohort_from_reviews(review_paths, participants_tsv, out_dir) -> pd.DataFrame:
    import json

    from tissuefate.cohort import read_participants

    reviews = [json.loads(Path(p).read_text()) for p in review_paths]
    return write_cohort(reviews, read_participants(Path(participants_tsv).parent), out_dir)


def _json_default(value):
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(type(value))


# --- prediction --------------------------------------------------------------------------

OTHER_TARGET = {"tissue_at_risk": "ischemic_core", "ischemic_core": "tissue_at_risk"}


def fold_prediction_labels(splits: dict, target: str, fold: int) -> tuple[list[str], list[str]]:
    """Labels a fold's model predicts: its own test patients, then the other target's test
    patients of the same fold (the cross-application that gives the mismatch ratio)."""
    own = [p.removeprefix("sub-") for p in splits[target]["folds"][fold - 1]["test"]]
    cross = [p.removeprefix("sub-") for p in splits[OTHER_TARGET[target]]["folds"][fold - 1]["test"]]
    return own, cross


def predict_fold(config: dict, patients: dict, model_path, approach: str, target: str, fold: int,
                 out_dir, attention_png=None, threads: int | None = None) -> list[Path]:
    """Every test patient of one fold (own and cross-applied) through the fold's model, in MNI
    space and mapped back to the patient's baseline DWI grid; one attention map per model.

    ``patients``: ``{"own": [...], "cross": [...]}`` labels (:func:`fold_prediction_labels`),
    as the workflow passes them.
    """
    from tissuefate.io import derivatives
    from tissuefate.io.atomic import atomic_dir
    from tissuefate.prediction import predict_participants, save_attention_map
    from tissuefate.preprocessing.workflow import to_native

    results = config.get("results_dir", "results")
    bids = config["dataset"]["bids_dir"]
    labels = list(patients["own"]) + list(patients["cross"])
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        names = [derivatives.prediction_map(results, approach, target, fold, lb).name for lb in labels]
        mni = predict_participants(model_path, labels, results, [tmp / n for n in names], threads=threads)
        for label, path in zip(labels, mni):
            native = derivatives.prediction_map(results, approach, target, fold, label, native=True).name
            to_native(path, label, results, bids, tmp / native)
    if attention_png is not None and labels:
        save_attention_map(model_path, labels[0], results, attention_png,
                           title=f"{approach} / {target} / fold {fold}: sub-{labels[0]}")
    return [out_dir / n for n in names]


# --- evaluation --------------------------------------------------------------------------

def _stroke_side(results, label: str) -> str:
    import json

    from tissuefate.io import derivatives

    summary = json.loads(derivatives.preproc_summary(results, label).read_text())
    return summary["stroke_side"]


def _load(path) -> tuple:
    import nibabel as nib
    import numpy as np

    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def evaluate(config: dict, splits_path, out_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/metrics/per_case.tsv and mismatch.tsv (METHOD.md section 8)."""
    from tissuefate.io import derivatives
    from tissuefate.metrics import (
        MISMATCH_COLUMNS, PER_CASE_COLUMNS, lesion_volume_ml, mismatch_frame, mismatch_row,
        per_case_frame, per_case_row, predicted_lesion, voxel_volume_ml,
    )
    from tissuefate.splits import load_splits
    from tissuefate.thresholding import thresholding_path

    results = config.get("results_dir", "results")
    cap = float((config.get("evaluation") or {}).get("mismatch_ratio_cap", 20.0))
    splits = load_splits(splits_path)
    cohort = pd.read_csv(Path(results) / "cohort" / "participants.tsv", sep="\t", keep_default_na=False)
    group_of = dict(zip(cohort["participant_id"], cohort["reperfusion_group"]))
    n_folds = len(splits["tissue_at_risk"]["folds"])

    def probability(approach, target, fold, label):
        if approach == "thresholding":
            return thresholding_path(results, label, target)
        return derivatives.prediction_map(results, approach, target, fold, label)

    rows, mismatch_rows = [], []
    for target in ("tissue_at_risk", "ischemic_core"):
        for fold in range(1, n_folds + 1):
            own, cross = fold_prediction_labels(splits, target, fold)
            for label in own:
                truth, affine = _load(derivatives.final_infarct_mask(results, label))
                coverage, _ = _load(derivatives.preproc_mask(results, label, "coverage"))
                side = _stroke_side(results, label)
                for approach in ("pretraining", "separate", "thresholding"):
                    prob, _ = _load(probability(approach, target, fold, label))
                    rows.append(per_case_row(participant_id=f"sub-{label}", target=target, approach=approach,
                                             fold=fold, probability=prob, truth=truth > 0.5,
                                             coverage=coverage > 0.5, side=side, affine=affine))
                # Mismatch: this patient's own target and the other target's cross-applied model.
                for approach in ("pretraining", "separate", "thresholding"):
                    volumes = {}
                    for t in ("tissue_at_risk", "ischemic_core"):
                        prob, aff = _load(probability(approach, t, fold, label))
                        volumes[t] = lesion_volume_ml(predicted_lesion(prob, coverage > 0.5), voxel_volume_ml(aff))
                    mismatch_rows.append(mismatch_row(
                        participant_id=f"sub-{label}", reperfusion_group=group_of.get(f"sub-{label}", "n/a"),
                        approach=approach, tissue_at_risk_ml=volumes["tissue_at_risk"],
                        core_ml=volumes["ischemic_core"], cap=cap))
    per_case = per_case_frame(rows)
    mismatch = mismatch_frame(mismatch_rows)
    out_dir = Path(out_dir)
    write_tsv(per_case, out_dir / "per_case.tsv", columns=PER_CASE_COLUMNS)
    write_tsv(mismatch, out_dir / "mismatch.tsv", columns=MISMATCH_COLUMNS)
    return per_case, mismatch


# --- statistics and figures -------------------------------------------------------------

TABLE_TITLES = {
    "summary": "Per-case metrics: median (IQR) per target and approach",
    "comparisons": "Paired Wilcoxon signed-rank tests, Benjamini-Hochberg adjusted",
    "concordance": "Lin's concordance of predicted and true volumes (cube root)",
    "mismatch_summary": "Mismatch ratio (tissue at risk / core) per reperfusion group",
}


def statistics_tables(config: dict, per_case_tsv, mismatch_tsv, out_dir) -> dict[str, pd.DataFrame]:
    """results/tables/: summary, comparisons, concordance, mismatch_summary (TSV + Markdown)."""
    from tissuefate import statistics as st

    cfg = config.get("statistics") or {}
    per_case = st.read_tsv(per_case_tsv)
    mismatch = st.read_tsv(mismatch_tsv)
    tables = {
        "summary": (st.summary_table(per_case), st.SUMMARY_COLUMNS),
        "comparisons": (st.comparisons_table(per_case, family=cfg.get("bh_family", "target"),
                                             alpha=float(cfg.get("significance_alpha", 0.008))),
                        st.COMPARISON_COLUMNS),
        "concordance": (st.concordance_table(per_case, ci=cfg.get("ccc_ci", "z-transform")), st.CONCORDANCE_COLUMNS),
        "mismatch_summary": (st.mismatch_summary(mismatch), st.MISMATCH_SUMMARY_COLUMNS),
    }
    out_dir = Path(out_dir)
    for name, (table, columns) in tables.items():
        st.write_tsv(table, out_dir / f"{name}.tsv", columns=columns)
        st.write_markdown(table, out_dir / f"{name}.md", title=TABLE_TITLES[name])
    return {k: v[0] for k, v in tables.items()}


def overlay_background(results, label: str) -> tuple:
    """The Fig 3 background of one participant: the follow-up FLAIR in MNI space as in the
    paper, else (no follow-up FLAIR) the baseline DWI. Returns (volume, what it is)."""
    from tissuefate.io import derivatives

    flair = derivatives.flair_map(results, label, "final")
    if flair.exists():
        return _load(flair)[0], "follow-up FLAIR"
    return _load(derivatives.preproc_map(results, label, "DWI", "normalized"))[0], "baseline DWI (no follow-up FLAIR)"


def result_figures(config: dict, per_case_tsv, mismatch_tsv, splits_path, out_dir) -> list[Path]:
    """Bland-Altman and predicted-vs-true volume grids, a Fig 3-style overlay per target and a
    Fig 4-style mismatch example."""
    from tissuefate import statistics as st
    from tissuefate.io import derivatives
    from tissuefate.reporting.figures import (
        mismatch_figure, overlay_figure, save_figure, volume_agreement_grid,
    )
    from tissuefate.splits import load_splits
    from tissuefate.thresholding import thresholding_path

    results = config.get("results_dir", "results")
    out_dir = Path(out_dir)
    per_case = st.read_tsv(per_case_tsv)
    mismatch = st.read_tsv(mismatch_tsv)
    splits = load_splits(splits_path)
    written = []
    for kind in ("bland_altman", "scatter"):
        path = out_dir / f"volumes_{kind}.png"
        save_figure(volume_agreement_grid(per_case, kind=kind), path)
        written.append(path)

    def prob(approach, target, fold, label):
        if approach == "thresholding":
            return thresholding_path(results, label, target)
        return derivatives.prediction_map(results, approach, target, fold, label)

    # Overlay: the test patient with the median pretraining Dice of each target.
    for target in ("tissue_at_risk", "ischemic_core"):
        rows = per_case[(per_case.target == target) & (per_case.approach == "pretraining")].dropna(subset=["dice"])
        if rows.empty:
            continue
        rows = rows.sort_values(["dice", "participant_id"]).reset_index(drop=True)
        row = rows.iloc[len(rows) // 2]
        label, fold = row.participant_id.removeprefix("sub-"), int(row.fold)
        background, background_label = overlay_background(results, label)
        truth, _ = _load(derivatives.final_infarct_mask(results, label))
        coverage, _ = _load(derivatives.preproc_mask(results, label, "coverage"))
        predictions = {a: (_load(prob(a, target, fold, label))[0] >= 0.5) & (coverage > 0.5)
                       for a in ("pretraining", "separate", "thresholding")}
        fig = overlay_figure(background, truth > 0.5, predictions, background_label=background_label,
                             title=f"{target.replace('_', ' ')}: sub-{label} (fold {fold}); "
                                   f"green TP, blue FN, red FP over the {background_label}")
        path = out_dir / f"overlay_{target}.png"
        save_figure(fig, path)
        written.append(path)

    # Mismatch example: the patient with the largest pretraining mismatch ratio.
    pre = mismatch[mismatch.approach == "pretraining"].dropna(subset=["mismatch_ratio"])
    if not pre.empty:
        row = pre.sort_values(["mismatch_ratio", "participant_id"], ascending=[False, True]).iloc[0]
        label = row.participant_id.removeprefix("sub-")
        fold = next(k + 1 for t in ("tissue_at_risk", "ischemic_core")
                    for k, f in enumerate(splits[t]["folds"]) if row.participant_id in f["test"])
        background, _ = _load(derivatives.preproc_map(results, label, "DWI", "normalized"))
        coverage, _ = _load(derivatives.preproc_mask(results, label, "coverage"))
        panels = {}
        for approach in ("pretraining", "thresholding"):
            tar = (_load(prob(approach, "tissue_at_risk", fold, label))[0] >= 0.5) & (coverage > 0.5)
            core = (_load(prob(approach, "ischemic_core", fold, label))[0] >= 0.5) & (coverage > 0.5)
            ratio = float(mismatch[(mismatch.participant_id == row.participant_id)
                                   & (mismatch.approach == approach)]["mismatch_ratio"].iloc[0])
            panels[approach] = (tar, core, ratio)
        path = out_dir / "mismatch_example.png"
        save_figure(mismatch_figure(background, panels, title=f"sub-{label} ({row.reperfusion_group} reperfusion)"), path)
        written.append(path)
    return written


def perfusion_table(config: dict, sessions, out_path) -> list[dict]:
    """results/qc/perfusion.tsv: per simulated perfusion session (``sessions``: (label, session)
    pairs), Tmax > cohort.tmax_threshold_s from the maps computed from raw DSC against the
    simulator's true Tmax (Dice, volume error)."""
    from tissuefate.io.bids import perfusion_maps_dir
    from tissuefate.perfusion.qc import session_tmax_agreement, write_tmax_agreement

    maps_dir = perfusion_maps_dir(config)
    if maps_dir is None:
        raise ValueError("perfusion.tsv compares maps computed from raw DSC: set perfusion.maps_source: computed")
    threshold_s = float(config["cohort"]["tmax_threshold_s"])
    bids = config["dataset"]["bids_dir"]
    rows = [session_tmax_agreement(label, session, maps_dir, bids, threshold_s) for label, session in sessions]
    write_tmax_agreement(rows, out_path)
    return rows


def registration_table(config: dict, out_path) -> pd.DataFrame:
    """results/qc/registration.tsv: per included participant, the registration against the
    simulator's truth (brain and lesion Dice, displacement) and the QC verdict."""
    import json

    from tissuefate.io import derivatives
    from tissuefate.preprocessing.qc import registration_accuracy

    results = config.get("results_dir", "results")
    bids = config["dataset"]["bids_dir"]
    cohort = pd.read_csv(Path(results) / "cohort" / "participants.tsv", sep="\t", keep_default_na=False)
    rows = []
    for pid in cohort.loc[cohort["included"].astype(str) == "True", "participant_id"]:
        label = pid.removeprefix("sub-")
        summary = json.loads(derivatives.preproc_summary(results, label).read_text())
        qc = summary.get("registration_qc", {})
        row = {"participant_id": pid, **registration_accuracy(label, results, bids),
               "qc_passed": bool(qc.get("passed", False)), "qc_reasons": "; ".join(qc.get("reasons", [])) or "n/a"}
        rows.append(row)
    table = pd.DataFrame(rows)
    write_tsv(table, out_path)
    return table
