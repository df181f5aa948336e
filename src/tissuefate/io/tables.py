"""Tables written byte-reproducibly (TSV) and read back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_path


def write_tsv(df: pd.DataFrame, path: str | Path, columns: Sequence[str] | None = None,
              float_format: str = "%.6g") -> None:
    """Write a table byte-reproducibly: given column order, ``%.6g`` floats, ``n/a`` for missing,
    ``\\n`` line ends, -0 written as 0; the file appears whole or not at all."""
    cols = list(columns) if columns is not None else list(df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"the table to write lacks the columns {missing}")
    out = df.loc[:, cols].copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c] + 0.0  # -0.0 + 0.0 == +0.0
    with atomic_path(path) as tmp:
        out.to_csv(tmp, sep="\t", index=False, float_format=float_format, na_rep="n/a", lineterminator="\n")


def read_tsv(path: str | Path) -> pd.DataFrame:
    """Read a table written by ``write_tsv`` (participant ids stay text)."""
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype={"participant_id": str, "agreement": str, "compared_with": str})


def format_p(p: float, *, digits: str = "fixed", missing: str = "n/a") -> str:
    """A P value in AJNR style, the one formatter of the package: ``<.001``, no leading zero.

    ``digits="fixed"`` (result tables): three decimals, ``>.99`` above .99.
    ``digits="adaptive"`` (the paper's Table 1): three decimals below .01, two below .1, else one
    (``.3``, ``1.0``). ``missing`` is written for an undefined P.
    """
    if p is None or math.isnan(p):
        return missing
    if p < 0.001:
        return "<.001"
    if digits == "adaptive":
        text = f"{p:.3f}" if p < 0.01 else f"{p:.2f}" if p < 0.1 else f"{p:.1f}"
        return text.lstrip("0") if not text.startswith("1") else "1.0"
    if p > 0.99:
        return ">.99"
    return f"{p:.3f}".lstrip("0")
