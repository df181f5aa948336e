"""A simulated multi-site acute-stroke cohort in BIDS (docs/simulation.md)."""

from tissuefate.simulation.simulate import participant_labels, simulate_participant, write_plan

__all__ = ["participant_labels", "simulate_participant", "write_plan"]
