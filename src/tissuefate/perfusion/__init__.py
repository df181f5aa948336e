"""Perfusion maps (Tmax, MTT, CBF, CBV, TTP) from a raw DSC-MRI series (docs/perfusion.md).

The names below load their module on first use (PEP 562), so the
workflow's Snakefile can import :mod:`tissuefate.perfusion.sessions` without nibabel, SciPy
and the deconvolution code.
"""

from importlib import import_module

_EXPORTS = {
    "DEFAULTS": "tissuefate.perfusion.job",
    "compute_perfusion_maps": "tissuefate.perfusion.job",
    "output_paths": "tissuefate.perfusion.job",
    "output_prefix": "tissuefate.perfusion.job",
    "raw_dsc_series": "tissuefate.io.bids",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
