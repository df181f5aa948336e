"""Which sessions of a dataset hold a raw DSC series: what the workflow's Snakefile asks while
it builds the DAG, so this module imports nothing heavier than the BIDS path helpers (the
simulator's plan is imported only for a simulated dataset)."""

from __future__ import annotations

from tissuefate.io.bids import raw_dsc_series

SESSIONS = ("baseline", "followup")


def dsc_sessions(config: dict, bids_root, labels) -> dict[str, list[str]]:
    """Per participant label, the sessions that hold a raw DSC series.

    A simulated dataset (``dataset.simulate``) is known from its plan before anything is
    written (the simulator writes a series for every perfusion study); a real one from its files.
    """
    if config["dataset"]["simulate"]:
        from tissuefate.simulation.clinical import make_plan

        plan = make_plan(config["simulation"], int(config["seed"])).set_index("participant_id")
        return {label: [s for s in SESSIONS if bool(plan.loc[f"sub-{label}", f"has_{s}_perfusion"])]
                for label in labels}
    return {label: [s for s in SESSIONS if raw_dsc_series(bids_root, label, s).exists()] for label in labels}
