"""Jobs of workflow/rules/perfusion.smk: which sessions have a raw DSC series, and the
accuracy of the maps computed from it against the simulator's truth (``results/qc/perfusion.tsv``).

The session folders a rule gives (``<results>/perfusion/sub-<label>/ses-<session>``, the
output of rule ``perfusion``) are the only place these jobs read computed maps from.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from tissuefate.io.bids import ParticipantFiles
from tissuefate.io.tables import write_tsv
from tissuefate.measures import voxel_volume_ml
from tissuefate.perfusion.job import output_paths
from tissuefate.perfusion.qc import TMAX_AGREEMENT_COLUMNS, tmax_threshold_agreement

AIF_QC_COLUMNS = ("aif_method", "aif_voxels", "aif_true_voxels_found", "aif_peak_over_tissue_peak",
                  "bolus_signal_drop")
PERFUSION_TABLE_COLUMNS = TMAX_AGREEMENT_COLUMNS + AIF_QC_COLUMNS


def session_of(folder) -> tuple[str, str]:
    """(label, session) of a perfusion output folder ``.../sub-<label>/ses-<session>``."""
    folder = Path(folder)
    if not (folder.name.startswith("ses-") and folder.parent.name.startswith("sub-")):
        raise ValueError(f"{folder} is not a perfusion session folder (.../sub-<label>/ses-<session>)")
    return folder.parent.name.removeprefix("sub-"), folder.name.removeprefix("ses-")


def true_map_path(bids_root, label: str, session: str, name: str = "Tmax") -> Path:
    """The simulator's true map of a session's raw DSC series (on the series' grid)."""
    return ParticipantFiles(Path(bids_root), label).truth_dir() / f"sub-{label}_ses-{session}_desc-true{name}_dsc.nii.gz"


def _load(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    if not path.exists():
        raise FileNotFoundError(path)
    img = nib.load(str(path))
    return np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32), nan=0.0), img


def session_accuracy(folder, bids_root, threshold_s: float = 6.0) -> dict:
    """One row of ``results/qc/perfusion.tsv``: Tmax > ``threshold_s`` of the maps computed
    in ``folder`` against the simulator's true Tmax, and the AIF's QC.

    Both maps lie on the series' grid; the whole grid is compared (computed maps are 0 outside
    their brain mask, so a true lesion voxel the mask missed counts as missed).
    ``aif_true_voxels_found``: how many of the chosen AIF voxels are the simulator's arterial voxels.
    """
    label, session = session_of(folder)
    prefix = f"sub-{label}_ses-{session}"
    paths = output_paths(folder, prefix)
    computed, computed_img = _load(paths["Tmax"])
    truth, truth_img = _load(true_map_path(bids_root, label, session))
    if computed.shape != truth.shape or not np.allclose(computed_img.affine, truth_img.affine, atol=1e-3):
        raise ValueError(f"{paths['Tmax']} and the true Tmax of sub-{label} ses-{session} are not on the same grid")
    row = tmax_threshold_agreement(computed, truth, np.ones(truth.shape, dtype=bool), voxel_volume_ml(truth_img),
                                   threshold_s)
    summary = json.loads(paths["summary"].read_text())
    chosen = {tuple(v) for v in json.loads(paths["aif_json"].read_text())["VoxelIndices"]}
    aif_truth = ParticipantFiles(Path(bids_root), label).truth_dir() / f"{prefix}_desc-aif_dsc.json"
    true_voxels = {tuple(v) for v in json.loads(aif_truth.read_text())["voxels_ijk"]}
    return {"participant_id": f"sub-{label}", "session": session, **row,
            "aif_method": summary["AIFMethod"], "aif_voxels": summary["AIFVoxels"],
            "aif_true_voxels_found": len(chosen & true_voxels),
            "aif_peak_over_tissue_peak": summary["AIFPeakOverTissuePeak"],
            "bolus_signal_drop": summary["BolusSignalDrop"]}


def perfusion_table(session_dirs, bids_root, out_tsv, threshold_s: float = 6.0) -> pd.DataFrame:
    """Rule perfusion_accuracy: one row per computed session (sorted) -> ``out_tsv``."""
    folders = sorted(Path(f) for f in session_dirs)
    table = pd.DataFrame([session_accuracy(f, bids_root, threshold_s) for f in folders],
                         columns=list(PERFUSION_TABLE_COLUMNS))
    write_tsv(table, out_tsv, columns=PERFUSION_TABLE_COLUMNS)
    return table
