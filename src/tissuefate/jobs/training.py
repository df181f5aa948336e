"""Jobs of workflow/rules/training.smk: the folds, then one training job per model."""

from __future__ import annotations

from pathlib import Path

from tissuefate.io import derivatives
from tissuefate.splits import write_splits
from tissuefate.training import train_job


def splits(cohort_tsv, out_json, seed: int, settings: dict) -> dict:
    """Rule splits: the cohort table -> splits.json (``settings``: the config's ``splits:``)."""
    return write_splits(cohort_tsv, out_json, seed, **settings)


def train(config: dict, patients: dict, preprocessed_dirs, model_out, approach: str, target: str | None = None,
          fold: int | None = None, pretrained=None, threads: int | None = None) -> Path:
    """Rules pretrain and train: one model from its patients (``{"train", "val"}``, the rule's
    params) whose preprocessed folders are ``preprocessed_dirs``; writes model.pt, curves.tsv
    and curves.png beside ``model_out``."""
    config = {**config, "results_dir": str(derivatives.common_results_root(preprocessed_dirs))}
    return train_job(config, None, Path(model_out).parent, approach, target, fold,
                     pretrained=pretrained, threads=threads, patients=patients)
