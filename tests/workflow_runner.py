"""Running Snakemake from the tests: no speed assertion, only a guard against hangs.

A test must not fail because a machine is slower. So a run of the workflow has no clock
that expects it to finish in some time; it is stopped only when it is clearly stuck:

- the stall detector: nothing new for ``STALL_SECONDS`` (default 900 s) in Snakemake's
  output nor in any log its jobs write (``.snakemake/slurm_logs/``, ``results/logs/``,
  ``logs/``). The longest silent step of the CI study (a bundled per-patient Slurm job on a
  machine twice as slow as usual) takes about 5 minutes;
- a backstop of ``LIMIT_SECONDS`` (default 5400 s, CI's whole budget) for a run that keeps
  printing without ever finishing.

When either stops a run, the test fails with which limit it hit, how long the run had
lasted and how far it got (Snakemake's last "N of M steps (P%) done" line).
Override the limits with TISSUEFATE_TEST_STALL_SECONDS and TISSUEFATE_TEST_LIMIT_SECONDS.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
STALL_SECONDS = int(os.environ.get("TISSUEFATE_TEST_STALL_SECONDS", "900"))
LIMIT_SECONDS = int(os.environ.get("TISSUEFATE_TEST_LIMIT_SECONDS", "5400"))
# Folders (relative to the run's working directory) whose files show that jobs progress.
ACTIVITY_DIRS = (".snakemake/slurm_logs", ".snakemake/log", "results/logs", "logs")

PROGRESS_RE = re.compile(r"(\d+) of (\d+) steps \((\d+%)\) done")

# The CI study as a researcher runs their own data: the cohort is simulated first with the
# command-line tool, then the workflow reads it as a real BIDS dataset (dataset.simulate: false),
# so the rerun tests see every raw file as an input. (The Slurm test runs the same study with
# the simulation inside the workflow, and its tables must be byte-identical to this run's.)
CI_DATA = "ci_data.yaml"
CI_ARGS = ("--configfile", "config/ci.yaml", CI_DATA)
# As `make demo` runs the study locally (Makefile LOCAL_FLAGS): Snakemake's default 100/1s
# re-checks every ready job's inputs each second, a quarter of a core for its main process.
LOCAL_FLAGS = ("--max-jobs-per-timespan", "1000/10s")


@dataclass
class Run:
    """A finished (or stopped) command, like subprocess.CompletedProcess."""

    args: list[str]
    returncode: int
    stdout: str
    seconds: float
    # Why the watchdog stopped the run; None when it ended by itself.
    stopped: str | None = None

    @property
    def stderr(self) -> str:  # stderr is merged into stdout
        return ""


def progress(output: str) -> str:
    """Snakemake's last progress line, e.g. '89 of 105 steps (85%) done'."""
    found = PROGRESS_RE.findall(output)
    if not found:
        return "no step finished yet"
    done, total, percent = found[-1]
    return f"{done} of {total} steps ({percent}) done"


def _activity(workdir: Path, log: Path) -> tuple:
    """A signature that changes whenever the run writes something we can see."""
    newest, count = 0, 0
    for rel in ACTIVITY_DIRS:
        for dirpath, _dirs, files in os.walk(workdir / rel):
            for name in files:
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except OSError:
                    continue
                count += 1
                newest = max(newest, st.st_mtime_ns)
    return log.stat().st_size, count, newest


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (Snakemake cancels its Slurm jobs), SIGKILL 20 s later."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_watched(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                stall_seconds: int = STALL_SECONDS, limit_seconds: int = LIMIT_SECONDS,
                poll_seconds: float = 2.0) -> Run:
    """Run a command (usually snakemake) in `cwd`; stop it only if it stalls or never ends."""
    cwd = Path(cwd)
    with tempfile.NamedTemporaryFile("w+", prefix="snakemake-", suffix=".log", delete=False) as fh:
        log = Path(fh.name)
    start = time.monotonic()
    stopped = None
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            last_change, seen = start, None
            while proc.poll() is None:
                time.sleep(poll_seconds)
                now = time.monotonic()
                signature = _activity(cwd, log)
                if signature != seen:
                    seen, last_change = signature, now
                if now - last_change > stall_seconds:
                    stopped = (f"stall detector: nothing new in Snakemake's output or its jobs' logs "
                               f"for {stall_seconds} s (TISSUEFATE_TEST_STALL_SECONDS)")
                elif now - start > limit_seconds:
                    stopped = (f"hang backstop: still running after {limit_seconds} s "
                               f"(TISSUEFATE_TEST_LIMIT_SECONDS)")
                if stopped:
                    _stop(proc)
                    break
        output = log.read_text(errors="replace")
    finally:
        log.unlink(missing_ok=True)
    seconds = time.monotonic() - start
    if stopped:
        stopped += f"; the run had lasted {seconds:.0f} s and got to {progress(output)}"
    return Run(list(args), proc.returncode, output, seconds, stopped)


def failure(run: Run, what: str = "snakemake", n: int = 8000) -> str:
    """The message for a failed run: why it stopped, then the end of its output."""
    head = f"{what} was stopped by the {run.stopped}" if run.stopped else \
        f"{what} exited with {run.returncode} after {run.seconds:.0f} s"
    return f"{head}\n{run.stdout[-n:]}"


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`snakemake --cores 2 ARGS` in `workdir`, guarded against hangs only."""
    return run_watched([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env)


def workflow_copy(dst: Path) -> Path:
    """The workflow's own files (the package is installed) in a fresh folder."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    for folder in ("workflow", "config", "profiles", "envs"):
        if (REPO / folder).exists():
            shutil.copytree(REPO / folder, dst / folder, symlinks=False)
    return dst
