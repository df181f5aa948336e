"""Glue for workflow/scripts/: log to the rule's log file, turn bad input into one clear line,
and end the log with the job's own CPU account."""

from __future__ import annotations

import logging
import resource
import sys
from pathlib import Path
from typing import Callable

from tissuefate.errors import InputError

#: The last line of every finished job's log: ``tissuefate.cost rule=<rule> cpu_s=<s> max_rss_mb=<MB>``
#: (tissuefate.reporting.costs reads it back).
ACCOUNT_PREFIX = "tissuefate.cost"


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process and its finished children have used since the
    process started, interpreter start-up and imports included (``getrusage``)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def job_account() -> tuple[float, float]:
    """:func:`cpu_seconds`, and the peak resident memory (MB) of the largest of the processes.

    Exact, where Snakemake's ``benchmark:`` files sample the job's processes (every 0.5 s for
    the first 15 s, then every 30 s) and miss what a job does after its last sample: a 30 s
    job loses half its CPU time there.
    """
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_seconds()
    per_mb = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: bytes on macOS, KiB on Linux
    return cpu, max(own.ru_maxrss, children.ru_maxrss) / per_mb


def write_account(log_path: str | Path, rule: str) -> None:
    """Append the job's CPU account (:func:`job_account`) to its log as one line."""
    cpu, rss = job_account()
    with open(log_path, "a") as log:
        log.write(f"{ACCOUNT_PREFIX} rule={rule} cpu_s={cpu:.3f} max_rss_mb={rss:.1f}\n")


def run(snakemake, func: Callable[[], None]) -> None:
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers, force=True)
    try:
        func()
        if log_path:
            for handler in handlers:
                handler.flush()  # the account goes below the job's own lines
            write_account(log_path, snakemake.rule)
    except InputError as err:
        # One line a researcher can act on; Snakemake removes the job's partial outputs.
        logging.getLogger("tissuefate").error("bad input: %s", err)
        sys.exit(1)
