"""Glue for workflow/scripts/: log to the rule's log file, turn bad input into one clear line."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from tissuefate.errors import InputError


def run(snakemake, func: Callable[[], None]) -> None:
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers, force=True)
    try:
        func()
    except InputError as err:
        # One line a researcher can act on; Snakemake removes the job's partial outputs.
        logging.getLogger("tissuefate").error("bad input: %s", err)
        sys.exit(1)
