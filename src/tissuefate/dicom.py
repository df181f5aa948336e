"""DICOM folders for `tissuefate predict`: one series per folder, converted with dcm2niix.

The `dcm2niix` wheel ships Chris Rorden's binary (pinned in pyproject.toml); pydicom reads the
headers first so that a folder holding several series, or no DICOM at all, is refused with a
clear message instead of a guess at which series was meant.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tissuefate.errors import InputError


def dcm2niix_binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def series_of(folder: Path, label: str | None = None) -> dict[str, list[Path]]:
    """SeriesInstanceUID -> files, for every DICOM file in ``folder`` (recursively)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "")) or "unknown"
        series.setdefault(uid, []).append(path)
        if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper().startswith(("RGB", "YBR", "PALETTE")):
            raise InputError(
                f"the DICOM file is a colour image ({ds.PhotometricInterpretation}): a secondary capture, not a "
                "quantitative map", participant=label, path=path,
                fix="export the grey-scale quantitative map from the scanner or the perfusion software")
    return series


def convert_series(folder: str | Path, out_dir: str | Path, *, label: str | None = None, what: str = "image") -> Path:
    """Convert the one series in ``folder`` to a NIfTI in ``out_dir`` (with dcm2niix's JSON sidecar)."""
    folder, out_dir = Path(folder), Path(out_dir)
    series = series_of(folder, label)
    if not series:
        raise InputError(f"the {what} folder holds no DICOM file", participant=label, path=folder,
                         fix="give the folder of the DICOM series, or a NIfTI file")
    if len(series) > 1:
        listing = ", ".join(f"{uid} ({len(files)} files, e.g. {files[0].name})" for uid, files in series.items())
        raise InputError(f"the {what} folder holds {len(series)} DICOM series: {listing}", participant=label,
                         path=folder, fix="give one folder per series (one series per map)")
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([dcm2niix_binary(), "-z", "y", "-b", "y", "-f", what, "-o", str(out_dir), str(folder)],
                          capture_output=True, text=True)
    niftis = sorted(out_dir.glob("*.nii.gz"))
    if proc.returncode != 0 or len(niftis) != 1:
        raise InputError(f"dcm2niix could not convert the {what} folder into one NIfTI (exit {proc.returncode}, "
                         f"{len(niftis)} files): {(proc.stdout + proc.stderr).strip()[-500:]}", participant=label,
                         path=folder, fix="check the series with dcm2niix by hand")
    return niftis[0]
