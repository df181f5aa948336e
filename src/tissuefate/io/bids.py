"""The BIDS layout tissuefate reads and writes (documented in docs/data.md).

Every path of the raw dataset is built here, once, so rules, the simulator and the
cohort stage agree on names.

Raw dataset (one folder per participant)::

    sub-<label>/ses-baseline/dwi/sub-<label>_ses-baseline_acq-b0_dwi.nii.gz
    sub-<label>/ses-baseline/dwi/sub-<label>_ses-baseline_acq-b1000_dwi.nii.gz
    sub-<label>/ses-baseline/dwi/sub-<label>_ses-baseline_ADC.nii.gz        (+ .json "Units"; _adc is read too)
    sub-<label>/ses-baseline/perf/sub-<label>_ses-baseline_{Tmax,MTT,CBF,CBV}.nii.gz (+ .json "Units")
    sub-<label>/ses-followup/perf/sub-<label>_ses-followup_Tmax.nii.gz     (4-24 h; .json "HoursSinceBaseline")
    sub-<label>/ses-final/anat/sub-<label>_ses-final_FLAIR.nii.gz          (.json "HoursSinceBaseline")
    derivatives/lesions/sub-<label>/ses-final/anat/sub-<label>_ses-final_desc-infarct_mask.nii.gz

With ``perfusion.maps_source: computed`` the perfusion maps of both sessions (Tmax, MTT, CBF,
CBV) are read instead from the perfusion stage's output, computed from each session's raw DSC
series ``sub-<label>/ses-<session>/perf/sub-<label>_ses-<session>_dsc.nii.gz`` (docs/perfusion.md)::

    <results>/perfusion/sub-<label>/ses-<session>/sub-<label>_ses-<session>_{Tmax,MTT,CBF,CBV}.nii.gz
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tissuefate.errors import InputError

# BIDS labels are alphanumeric; anything else (slashes, dots, shell characters) is refused
# before it can reach a path or a command line.
_LABEL = re.compile(r"^[A-Za-z0-9]+$")

BASELINE = "baseline"
FOLLOWUP = "followup"  # 4-24 h perfusion, for the reperfusion rate only
FINAL = "final"  # follow-up lesion imaging (3-7 d FLAIR, or other follow-up)

PERFUSION_MAPS = ("Tmax", "MTT", "CBF", "CBV")
DIFFUSION_MAPS = ("b0", "b1000", "adc")
BASELINE_MAPS = DIFFUSION_MAPS + PERFUSION_MAPS

# Units tissuefate expects in sidecars ("Units" field) for each map.
EXPECTED_UNITS = {
    "Tmax": "s",
    "MTT": "s",
    "CBF": "mL/100g/min",
    "CBV": "mL/100g",
}


def validate_label(participant_id: str) -> str:
    """Return the bare label of ``sub-<label>`` or ``<label>``; refuse anything unsafe."""
    label = participant_id[4:] if participant_id.startswith("sub-") else participant_id
    if not _LABEL.match(label):
        raise InputError(
            f"participant ID {participant_id!r} is not a BIDS label (letters and digits only)",
            path="participants.tsv",
            fix="rename the participant (folder, files and participants.tsv row) with letters and digits only",
        )
    return label


def participant_id(label: str) -> str:
    return f"sub-{validate_label(label)}"


def perfusion_maps_dir(config: dict) -> Path | None:
    """Where the study reads its perfusion maps: None for the dataset's own (provided) maps,
    ``<results>/perfusion`` (absolute) when ``perfusion.maps_source`` is ``computed``."""
    if (config.get("perfusion") or {}).get("maps_source", "provided") != "computed":
        return None
    return (Path(config.get("results_dir", "results")) / "perfusion").resolve()


def raw_dsc_series(bids_dir: str | Path, label: str, session: str) -> Path:
    """BIDS path of a session's raw DSC series (its sidecar: same name, ``.json``)."""
    return Path(bids_dir) / f"sub-{label}" / f"ses-{session}" / "perf" / f"sub-{label}_ses-{session}_dsc.nii.gz"


@dataclass(frozen=True)
class ParticipantFiles:
    """Paths of one participant's raw files in a BIDS dataset (they may not exist).

    ``maps_dir`` (``perfusion_maps_dir``): when given, the Tmax, MTT, CBF and CBV maps of both
    sessions are the ones the perfusion stage computed there from raw DSC.
    """

    root: Path
    label: str
    maps_dir: Path | None = None

    @property
    def sub(self) -> str:
        return f"sub-{self.label}"

    def _path(self, session: str, datatype: str, suffix: str) -> Path:
        name = f"{self.sub}_ses-{session}_{suffix}.nii.gz"
        if datatype == "perf" and self.maps_dir is not None:
            return Path(self.maps_dir) / self.sub / f"ses-{session}" / name
        return self.root / self.sub / f"ses-{session}" / datatype / name

    @property
    def folder(self) -> Path:
        return self.root / self.sub

    def baseline(self, name: str) -> Path:
        """Path of a baseline map: b0, b1000, adc, Tmax, MTT, CBF or CBV."""
        if name == "b0":
            return self._path(BASELINE, "dwi", "acq-b0_dwi")
        if name == "b1000":
            return self._path(BASELINE, "dwi", "acq-b1000_dwi")
        if name == "adc":
            # BIDS 1.10 names the map with the suffix ADC (written so); datasets written
            # before with the suffix adc are still read.
            legacy = self._path(BASELINE, "dwi", "adc")
            return legacy if legacy.exists() else self._path(BASELINE, "dwi", "ADC")
        if name in PERFUSION_MAPS:
            return self._path(BASELINE, "perf", name)
        raise KeyError(name)

    @property
    def tmax_followup(self) -> Path:
        return self._path(FOLLOWUP, "perf", "Tmax")

    @property
    def flair_final(self) -> Path:
        return self._path(FINAL, "anat", "FLAIR")

    @property
    def infarct_mask(self) -> Path:
        name = f"{self.sub}_ses-{FINAL}_desc-infarct_mask.nii.gz"
        return self.root / "derivatives" / "lesions" / self.sub / f"ses-{FINAL}" / "anat" / name

    def truth_dir(self) -> Path:
        """Simulator truth (tests and QC only; the pipeline never reads it)."""
        return self.root / "derivatives" / "simulation" / self.sub


def sidecar_path(image: Path) -> Path:
    name = image.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return image.with_name(name[: -len(ext)] + ".json")
    raise ValueError(f"not a NIfTI path: {image}")


def read_sidecar(image: Path, participant: str | None = None, required: bool = False) -> dict:
    """The JSON sidecar of ``image`` ({} if absent and not required)."""
    path = sidecar_path(image)
    if not path.exists():
        if required:
            raise InputError(
                "the JSON sidecar is missing",
                participant=participant,
                path=path,
                fix="write the sidecar as described in docs/data.md",
            )
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"the JSON sidecar cannot be read ({err})",
            participant=participant,
            path=path,
            fix="repair or re-export the sidecar (it must be a JSON object)",
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            "the JSON sidecar is not a JSON object",
            participant=participant,
            path=path,
            fix="write the sidecar as a JSON object of BIDS fields",
        )
    return data


def write_json(path: Path, data: dict) -> None:
    from tissuefate.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# The perfusion maps (Tmax, MTT, CBF, CBV) are not BIDS suffixes of the perf datatype: the
# validator is told to skip them (and their sidecars).
BIDSIGNORE = "".join(f"*_{name}.nii.gz\n*_{name}.json\n" for name in PERFUSION_MAPS)


def write_bidsignore(root: str | Path) -> Path:
    """Write the dataset's ``.bidsignore`` (the perfusion maps' non-BIDS suffixes)."""
    from tissuefate.io.atomic import atomic_write_text

    path = Path(root) / ".bidsignore"
    atomic_write_text(path, BIDSIGNORE)
    return path
