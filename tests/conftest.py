"""Shared fixtures: a small simulated BIDS dataset (module-level cache per session)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("OMP_NUM_THREADS", "1")

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def workflow_copy(dst: Path) -> Path:
    """The workflow's own files (the package is installed) in a fresh folder."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    for folder in ("workflow", "config", "profiles", "envs"):
        if (REPO / folder).exists():
            shutil.copytree(REPO / folder, dst / folder, symlinks=False)
    return dst


def snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["timeout", "-k", "10", str(timeout), SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir, capture_output=True, text=True,
    )


# The CI study as a researcher runs their own data: the cohort is simulated first with the
# command-line tool, then the workflow reads it as a real BIDS dataset (dataset.simulate: false),
# so the rerun tests see every raw file as an input. (The Slurm test runs the same study with
# the simulation inside the workflow, and its tables must be byte-identical to this run's.)
CI_DATA = "ci_data.yaml"
CI_ARGS = ("--configfile", "config/ci.yaml", CI_DATA)


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory) -> Path:
    reuse = os.environ.get("TISSUEFATE_CI_RUN", "").strip()
    if reuse:
        # Development: a finished run of this fixture (same commit) to reuse, read-only.
        return Path(reuse).resolve()
    workdir = workflow_copy(tmp_path_factory.mktemp("workflow") / "repo")
    tool = Path(sys.executable).parent / "tissuefate"
    sim = subprocess.run([str(tool), "simulate", "--configfile", "config/ci.yaml"], cwd=workdir,
                         capture_output=True, text=True)
    assert sim.returncode == 0, (sim.stdout + sim.stderr)[-8000:]
    bids = yaml.safe_load((workdir / "config/ci.yaml").read_text())["dataset"]["bids_dir"]
    (workdir / CI_DATA).write_text(f"dataset:\n  simulate: false\n  bids_dir: {bids}\n")
    proc = snakemake(workdir, *CI_ARGS)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    return workdir


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
