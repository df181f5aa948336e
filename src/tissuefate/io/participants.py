"""participants.tsv of a BIDS dataset. Kept apart from :mod:`tissuefate.cohort` (which needs
nibabel and SciPy for the reviews) because the workflow's Snakefile reads it while it builds
the DAG, in every Snakemake process, Slurm job steps included."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tissuefate.errors import InputError
from tissuefate.io.bids import validate_label


def read_participants(bids_root: str | Path) -> pd.DataFrame:
    """participants.tsv of a BIDS dataset, IDs validated (a hostile ID stops here)."""
    path = Path(bids_root) / "participants.tsv"
    if not path.exists():
        raise InputError("participants.tsv is missing", path=path,
                         fix="write participants.tsv with a participant_id column (see docs/data.md)")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as err:
        raise InputError(f"participants.tsv cannot be read ({err})", path=path,
                         fix="save it as tab-separated text with a header row") from None
    if "participant_id" not in df.columns:
        raise InputError("participants.tsv has no participant_id column", path=path,
                         fix="name the first column participant_id (BIDS)")
    for pid in df["participant_id"]:
        validate_label(pid)
    if df["participant_id"].duplicated().any():
        dup = df.loc[df["participant_id"].duplicated(), "participant_id"].iloc[0]
        raise InputError(f"participant {dup} is listed twice", path=path, fix="keep one row per participant")
    return df
