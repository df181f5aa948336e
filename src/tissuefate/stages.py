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


def review_to_json(bids_root, label: str, participants_tsv, config: dict, out_path) -> dict:
    """Review one participant (tissuefate.cohort.review_participant) and write its row as JSON."""
    import json

    from tissuefate.cohort import read_participants, review_participant

    participants = read_participants(Path(participants_tsv).parent)
    match = participants[participants["participant_id"] == f"sub-{label}"]
    clinical = match.iloc[0].to_dict() if len(match) else {}
    row = review_participant(bids_root, label, clinical, config)
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
