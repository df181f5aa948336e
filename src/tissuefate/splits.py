"""Which patient trains, validates and tests which model (METHOD.md sections 6-7).

- Pretraining: partial + unknown reperfusion patients, split 90 % train / 10 % validation.
- Tissue at risk (minimal reperfusion) and ischemic core (major reperfusion): patients with
  a 3-7 day follow-up are shuffled into ``n_folds`` sets; fold k tests set k, validates on
  the next ``ratio[1]`` sets and trains on the rest (3:1:1 for five folds). Patients without
  a 3-7 day follow-up are added to every fold's training set, never to validation or test.

The result is written to ``results/splits/splits.json`` (nnU-Net's splits_final.json idea),
the record the evaluation reads. The workflow computes the same splits with
:func:`read_splits` when it builds the DAG and hands each training and prediction job its own
patients, so that a job reruns only when its patients change.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from tissuefate.config import section_defaults
from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_write_text

from tissuefate.names import (  # noqa: F401  (part of this module's API)
    OTHER_TARGET, PRETRAINING_GROUPS, REPERFUSION_GROUPS, TARGET_GROUPS, TARGETS,
)
REQUIRED_COLUMNS = ("participant_id", "included", "reperfusion_group", "has_followup_3to7d")

_SPLITS = section_defaults("splits")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _as_bool(value, column: str, pid: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE or text == "nan":
        return False
    raise InputError(
        f"column {column!r} holds {value!r}, a boolean is expected",
        participant=pid,
        path="cohort table",
        fix="write True or False in that column",
    )


def _rng(seed: int, name: str) -> np.random.Generator:
    # One independent stream per target: adding pretraining patients never reshuffles folds.
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _fold_sets(ids: list[str], n_folds: int, rng: np.random.Generator) -> list[list[str]]:
    order = rng.permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return [sorted(part.tolist()) for part in np.array_split(np.array(shuffled, dtype=object), n_folds)]


def _check_ratio(n_folds: int, ratio) -> tuple[int, int, int]:
    ratio = tuple(int(r) for r in ratio)
    if len(ratio) != 3 or min(ratio) < 1 or sum(ratio) != n_folds or ratio[2] != 1:
        raise ValueError(
            f"splits: ratio {ratio} does not fit {n_folds} folds. Fix: give train:val:test set "
            f"counts that sum to n_folds with one test set per fold, e.g. (3, 1, 1) for 5 folds"
        )
    return ratio


def make_splits(
    cohort_df: pd.DataFrame,
    seed: int,
    n_folds: int = _SPLITS["n_folds"],
    ratio=tuple(_SPLITS["ratio"]),
    pretrain_val_fraction: float = _SPLITS["pretrain_val_fraction"],
) -> dict:
    """Pretraining split and cross-validation folds per target, deterministic for ``seed``.

    ``cohort_df`` has columns participant_id, included, reperfusion_group (minimal, partial,
    major, unknown) and has_followup_3to7d. Excluded patients are ignored.
    Returns ``{"pretraining": {"train", "val"}, "tissue_at_risk": {"folds": [{"train",
    "val", "test"}, ...], "sets": [...], "train_only": [...]}, "ischemic_core": {...}}``.
    """
    n_train_sets, n_val_sets, _ = _check_ratio(n_folds, ratio)
    if not 0.0 < pretrain_val_fraction < 1.0:
        raise ValueError(f"splits: pretrain_val_fraction must be in (0, 1), got {pretrain_val_fraction}")
    missing = [c for c in REQUIRED_COLUMNS if c not in cohort_df.columns]
    if missing:
        raise InputError(
            f"the cohort table lacks column(s) {', '.join(missing)}",
            path="cohort table",
            fix="run the cohort stage, which writes participant_id, included, reperfusion_group and has_followup_3to7d",
        )

    groups: dict[str, list[str]] = {g: [] for g in REPERFUSION_GROUPS}
    followup: dict[str, bool] = {}
    seen: set[str] = set()
    for row in cohort_df.itertuples(index=False):
        pid = str(row.participant_id)
        if pid in seen:
            raise InputError("the participant appears twice in the cohort table", participant=pid,
                             path="cohort table", fix="keep one row per participant")
        seen.add(pid)
        if not _as_bool(row.included, "included", pid):
            continue
        group = str(row.reperfusion_group).strip().lower()
        if group not in groups:
            raise InputError(
                f"reperfusion_group {row.reperfusion_group!r} is not one of {', '.join(REPERFUSION_GROUPS)}",
                participant=pid, path="cohort table", fix="rerun the reperfusion classification",
            )
        groups[group].append(pid)
        followup[pid] = _as_bool(row.has_followup_3to7d, "has_followup_3to7d", pid)
    for ids in groups.values():
        ids.sort()

    pre_ids = sorted(groups["partial"] + groups["unknown"])
    if len(pre_ids) < 2:
        raise InputError(
            f"pretraining needs at least 2 included partial- or unknown-reperfusion patients, found {len(pre_ids)}",
            path="cohort table",
            fix="add patients with partial or unknown reperfusion (simulation.n_included) or drop the pretraining approach",
        )
    rng = _rng(seed, "pretraining")
    order = rng.permutation(len(pre_ids))
    n_val = min(len(pre_ids) - 1, max(1, int(round(pretrain_val_fraction * len(pre_ids)))))
    val = sorted(pre_ids[i] for i in order[:n_val])
    train = sorted(pre_ids[i] for i in order[n_val:])
    splits: dict = {"pretraining": {"train": train, "val": val}}

    for target, group in TARGET_GROUPS.items():
        ids = groups[group]
        testable = [p for p in ids if followup[p]]
        train_only = [p for p in ids if not followup[p]]
        if len(testable) < n_folds:
            raise InputError(
                f"{target}: {len(testable)} {group}-reperfusion patient(s) with a 3-7 day follow-up, "
                f"at least {n_folds} are needed for {n_folds} folds (one per set)",
                path="cohort table",
                fix=f"add {group}-reperfusion patients with a 3-7 day follow-up (e.g. raise simulation.n_included) "
                f"or lower splits.n_folds",
            )
        sets = _fold_sets(testable, n_folds, _rng(seed, target))
        folds = []
        for k in range(n_folds):
            test = sets[k]
            val_sets = [sets[(k + 1 + j) % n_folds] for j in range(n_val_sets)]
            train_sets = [sets[(k + 1 + n_val_sets + j) % n_folds] for j in range(n_train_sets)]
            folds.append({
                "train": sorted([p for s in train_sets for p in s] + train_only),
                "val": sorted(p for s in val_sets for p in s),
                "test": list(test),
            })
        splits[target] = {"folds": folds, "sets": sets, "train_only": train_only}
    return splits


def read_splits(cohort_tsv: str | Path, seed: int, **kwargs) -> dict:
    """The splits of a cohort table (TSV), as :func:`write_splits` writes them.

    The workflow also calls this when it builds the DAG, so that each training and prediction
    job lists exactly its own patients as inputs (and reruns only when they change).
    """
    cohort_tsv = Path(cohort_tsv)
    if not cohort_tsv.exists():
        raise InputError("the cohort table is missing", path=cohort_tsv, fix="run the cohort stage first")
    df = pd.read_csv(cohort_tsv, sep="\t", dtype={"participant_id": str})
    return make_splits(df, seed, **kwargs)


def write_splits(cohort_tsv: str | Path, out_json: str | Path, seed: int, **kwargs) -> dict:
    """Read the cohort table (TSV), make the splits and write them as JSON (one rule, one call).

    ``kwargs``: n_folds, ratio, pretrain_val_fraction (config section ``splits:``).
    """
    splits = read_splits(cohort_tsv, seed, **kwargs)
    atomic_write_text(out_json, json.dumps(splits, indent=2) + "\n")
    return splits


def load_splits(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError("the splits file is missing", path=path, fix="run the splits rule first")
    with open(path) as f:
        return json.load(f)


def job_patients(splits: dict, approach: str, target: str | None = None, fold: int | None = None) -> dict:
    """Patients of one training job: ``{"train", "val", "test"}``.

    ``approach="pretrain"`` is the shared pretraining job (no test set); "pretraining"
    (fine-tuning) and "separate" take ``target`` and the 1-based ``fold``.
    """
    if approach == "pretrain":
        return {"train": list(splits["pretraining"]["train"]), "val": list(splits["pretraining"]["val"]), "test": []}
    if approach not in ("pretraining", "separate"):
        raise ValueError(f"approach must be pretrain, pretraining or separate, got {approach!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    folds = splits[target]["folds"]
    if fold is None or not 1 <= int(fold) <= len(folds):
        raise ValueError(f"fold must be 1..{len(folds)}, got {fold!r}")
    return {k: list(v) for k, v in folds[int(fold) - 1].items()}


def fold_prediction_labels(splits: dict, target: str, fold: int) -> tuple[list[str], list[str]]:
    """Labels a fold's model predicts: its own test patients, then the other target's test
    patients of the same fold (the cross-application that gives the mismatch ratio)."""
    own = [p.removeprefix("sub-") for p in splits[target]["folds"][fold - 1]["test"]]
    cross = [p.removeprefix("sub-") for p in splits[OTHER_TARGET[target]]["folds"][fold - 1]["test"]]
    return own, cross
