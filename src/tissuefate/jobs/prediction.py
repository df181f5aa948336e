"""The job of workflow/rules/prediction.smk: one fold's model on its test patients."""

from __future__ import annotations

from pathlib import Path

from tissuefate.io import derivatives
from tissuefate.io.atomic import atomic_dir
from tissuefate.prediction import predict_participants, save_attention_map
from tissuefate.preprocessing.workflow import to_native
from tissuefate.splits import fold_prediction_labels  # noqa: F401  (the rule's patients)


def predict_fold(patients: dict, model_path, preprocessed_dirs, bids_root, approach: str, target: str, fold: int,
                 out_dir, attention_png=None, threads: int | None = None) -> list[Path]:
    """Every test patient of one fold (own and cross-applied) through the fold's model, in MNI
    space and mapped back to the patient's baseline DWI grid; one attention map per model.

    ``patients``: ``{"own": [...], "cross": [...]}`` labels
    (:func:`tissuefate.splits.fold_prediction_labels`), as the rule passes them;
    ``preprocessed_dirs``: their preprocessing folders (the rule's inputs).
    """
    results = derivatives.common_results_root(preprocessed_dirs)
    labels = list(patients["own"]) + list(patients["cross"])
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        names = [derivatives.prediction_map(results, approach, target, fold, lb).name for lb in labels]
        mni = predict_participants(model_path, labels, results, [tmp / n for n in names], threads=threads)
        for label, path in zip(labels, mni):
            native = derivatives.prediction_map(results, approach, target, fold, label, native=True).name
            to_native(path, label, results, bids_root, tmp / native)
    if attention_png is not None and labels:
        save_attention_map(model_path, labels[0], results, attention_png,
                           title=f"{approach} / {target} / fold {fold}: sub-{labels[0]}")
    return [out_dir / n for n in names]
