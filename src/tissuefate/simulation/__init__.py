"""A simulated multi-site acute-stroke cohort in BIDS (docs/simulation.md).

The names below load their module on first use (PEP 562), so the workflow's Snakefile can
import the light :mod:`tissuefate.simulation.clinical` without the simulator's imaging stack.
"""

from importlib import import_module

_EXPORTS = {
    "participant_labels": "tissuefate.simulation.clinical",
    "simulate_participant": "tissuefate.simulation.simulate",
    "write_plan": "tissuefate.simulation.simulate",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
