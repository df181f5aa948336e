"""Jobs of workflow/rules/cohort.smk: review one participant, then the cohort table,
Table 1 and the flow diagram."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tissuefate.cohort import COHORT_COLUMNS, build_cohort, review_participant
from tissuefate.io.atomic import atomic_write_text
from tissuefate.io.participants import read_participants
from tissuefate.io.tables import write_tsv


def review(bids_root, label: str, participants_tsv, config: dict, out_json) -> dict:
    """Rule review_participant: review one participant (:func:`tissuefate.cohort.review_participant`)
    and write its row as JSON."""
    participants = read_participants(Path(participants_tsv).parent)
    match = participants[participants["participant_id"] == f"sub-{label}"]
    clinical = match.iloc[0].to_dict() if len(match) else {}
    row = review_participant(bids_root, label, clinical, config)
    atomic_write_text(out_json, json.dumps(row, indent=2, default=_json_default) + "\n")
    return row


def cohort(review_jsons, participants_tsv, participants_out, table1_tsv, table1_md, flow_png) -> pd.DataFrame:
    """Rule cohort: the participants' reviews -> cohort table, Table 1 (TSV and Markdown), flow diagram."""
    reviews = [json.loads(Path(p).read_text()) for p in review_jsons]
    return write_cohort_files(reviews, read_participants(Path(participants_tsv).parent),
                              participants_out, table1_tsv, table1_md, flow_png)


def write_cohort_files(reviews: list[dict], participants: pd.DataFrame, participants_out, table1_tsv, table1_md,
                       flow_png) -> pd.DataFrame:
    # Imported here, not at the top: each of the study's review_participant jobs (one per
    # participant) imports this module, and matplotlib and SciPy's statistics would double
    # its start-up (~1.5 CPU s a job) for code only the one cohort job runs.
    from tissuefate.reporting.figures import save_figure
    from tissuefate.reporting.flow import flow_figure
    from tissuefate.table1 import table1, table1_markdown

    cohort_table = build_cohort(reviews, participants)
    clinical = [c for c in participants.columns if c not in COHORT_COLUMNS]
    write_tsv(cohort_table, participants_out, columns=list(COHORT_COLUMNS) + clinical)
    table = table1(cohort_table)
    write_tsv(table, table1_tsv)
    atomic_write_text(table1_md, table1_markdown(table))
    save_figure(flow_figure(cohort_table), flow_png)
    return cohort_table


def write_cohort(reviews: list[dict], participants: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """The cohort stage into one folder (the ``tissuefate cohort`` command): participants.tsv,
    table1.tsv, table1.md, flow.png."""
    out_dir = Path(out_dir)
    return write_cohort_files(reviews, participants, out_dir / "participants.tsv", out_dir / "table1.tsv",
                              out_dir / "table1.md", out_dir / "flow.png")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(type(value))


def describe_results(out_json, bids_root) -> dict:
    """Rule results_description: ``results/`` is a BIDS derivatives dataset; its
    dataset_description.json names the pipeline and the raw dataset it was computed from."""
    import os

    from tissuefate import __version__

    description = {
        "Name": "tissuefate: tissue-at-risk and ischemic-core predictions",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "tissuefate", "Version": __version__,
                         "Description": "Yu et al., AJNR 2021 (doi 10.3174/ajnr.A7081), reproduced"}],
        "SourceDatasets": [{"URL": Path(os.path.relpath(Path(bids_root), Path(out_json).parent)).as_posix()}],
    }
    atomic_write_text(out_json, json.dumps(description, indent=2) + "\n")
    return description
