"""Perfusion maps (Tmax, MTT, CBF, CBV, TTP) from a raw DSC-MRI series (docs/perfusion.md)."""

from tissuefate.perfusion.job import DEFAULTS, compute_perfusion_maps, output_paths, output_prefix, raw_dsc_series

__all__ = ["DEFAULTS", "compute_perfusion_maps", "output_paths", "output_prefix", "raw_dsc_series"]
