"""Perfusion maps (Tmax, MTT, CBF, CBV, TTP) from a raw DSC-MRI series (docs/perfusion.md).

The names below load :mod:`tissuefate.perfusion.job` on first use (PEP 562), so the
workflow's Snakefile can import :mod:`tissuefate.perfusion.sessions` without nibabel, SciPy
and the deconvolution code.
"""

from importlib import import_module

_EXPORTS = ("DEFAULTS", "compute_perfusion_maps", "output_paths", "output_prefix", "raw_dsc_series")

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module("tissuefate.perfusion.job"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
