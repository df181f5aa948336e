"""Shared fixtures: a small simulated BIDS dataset (module-level cache per session)."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("OMP_NUM_THREADS", "1")


def load_config(name: str = "ci.yaml") -> dict:
    with open(REPO / "config" / name) as f:
        config = yaml.safe_load(f)
    from tissuefate.config import validate_config

    return validate_config(config)


@pytest.fixture(scope="session")
def ci_config() -> dict:
    return load_config("ci.yaml")


@pytest.fixture(scope="session")
def simulated_bids(tmp_path_factory, ci_config) -> Path:
    """The CI cohort's BIDS dataset, simulated once per test session (read-only for tests)."""
    from tissuefate.simulation import participant_labels, simulate_participant, write_plan

    root = tmp_path_factory.mktemp("bids") / "ci_bids"
    write_plan(ci_config, root)
    for label in participant_labels(ci_config["simulation"]):
        simulate_participant(ci_config, root, label)
    return root


@pytest.fixture
def bids_copy(tmp_path, simulated_bids) -> Path:
    """A writable copy of the simulated dataset, for tests that break it."""
    dst = tmp_path / "bids"
    shutil.copytree(simulated_bids, dst)
    return dst


@pytest.fixture
def config(ci_config) -> dict:
    return copy.deepcopy(ci_config)
