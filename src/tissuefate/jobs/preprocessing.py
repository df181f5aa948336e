"""Jobs of workflow/rules/preprocessing.smk: preprocess one participant, threshold its maps,
and the registration accuracy table.

The participant folders a rule gives (``<results>/preprocessing/sub-<label>``) are the only
place these jobs read derivatives from; file names inside them come from
:mod:`tissuefate.io.derivatives`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tissuefate.io import derivatives
from tissuefate.io.tables import write_tsv
from tissuefate.thresholding import threshold_participant

# The preprocessing workflow (nipype, antspyx) and its QC are imported in the jobs that run
# them: the thresholding job, one per participant, imports this module too and needs neither
# (~1 CPU s less start-up for each of those jobs).


def preprocess(label: str, bids_root, out_dir, config: dict) -> dict:
    """Rule preprocess: one participant's raw BIDS data -> its folder of MNI-space derivatives."""
    from tissuefate.preprocessing.workflow import preprocess_participant

    # nipype runs each node in its own folder: give it absolute paths.
    results = derivatives.results_root(out_dir).resolve()
    return preprocess_participant(label, Path(bids_root).resolve(), results, config)


def threshold(preprocessed_dir, out_paths: dict, config: dict) -> dict[str, Path]:
    """Rule thresholding: the participant's score map per target (``out_paths``: target -> path)."""
    label = derivatives.participant_label(preprocessed_dir)
    return threshold_participant(label, derivatives.results_root(preprocessed_dir), config,
                                 targets=tuple(out_paths), out_paths=out_paths)


def registration_table(preprocessed_dirs, bids_root, out_tsv) -> pd.DataFrame:
    """Rule registration_accuracy: per participant given, the registration against the
    simulator's truth (brain and lesion Dice, displacement) and the QC verdict."""
    from tissuefate.preprocessing.qc import registration_accuracy

    rows = []
    for label, folder in sorted(derivatives.by_participant(preprocessed_dirs).items()):
        results = derivatives.results_root(folder)
        summary = json.loads(derivatives.preproc_summary(results, label).read_text())
        qc = summary.get("registration_qc", {})
        rows.append({"participant_id": f"sub-{label}", **registration_accuracy(label, results, bids_root),
                     "qc_passed": bool(qc.get("passed", False)),
                     "qc_reasons": "; ".join(qc.get("reasons", [])) or "n/a"})
    table = pd.DataFrame(rows)
    write_tsv(table, out_tsv)
    return table
