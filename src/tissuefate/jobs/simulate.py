"""Jobs of workflow/rules/simulate.smk: the simulated dataset's plan, then each participant."""

from __future__ import annotations

from pathlib import Path

from tissuefate.io.bids import write_bidsignore
from tissuefate.simulation import simulate_participant, write_plan


def plan(config: dict, bids_root) -> Path:
    """Rule simulate_plan: participants.tsv/.json, dataset_description.json, the plan and the
    dataset's .bidsignore."""
    write_plan(config, bids_root)
    return write_bidsignore(bids_root)


def participant(config: dict, bids_root, label: str) -> None:
    """Rule simulate_participant: one participant's raw data, lesion mask and truth."""
    simulate_participant(config, bids_root, label)
