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

from support import CI_ARGS, CI_DATA, LOCAL_FLAGS, failure, load_config, snakemake, workflow_copy

os.environ.setdefault("OMP_NUM_THREADS", "1")


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
    proc = snakemake(workdir, *CI_ARGS, *LOCAL_FLAGS)
    assert proc.returncode == 0, failure(proc, "the CI study (local run)")
    return workdir


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


# Wall seconds per test file (setup, call and teardown; a session fixture such as ci_run counts
# towards the first file that asks for it), printed at the end so a slow CI shows where its
# time went.
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FILE_SECONDS:
        return
    terminalreporter.section("wall seconds per test file")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:9.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_FILE_SECONDS.values()):9.1f} s  in all")
