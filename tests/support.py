"""Helpers shared by the tests (imported by them; the fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from tissuefate.io.derivatives import MAP_NAMES, final_infarct_mask, preproc_map, preproc_mask
# Running the workflow (no clock, only a guard against hangs) lives in workflow_runner.
from workflow_runner import CI_ARGS, CI_DATA, LOCAL_FLAGS, SNAKEMAKE, failure, snakemake, workflow_copy  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def load_config(name: str = "ci.yaml") -> dict:
    with open(REPO / "config" / name) as f:
        config = yaml.safe_load(f)
    from tissuefate.config import validate_config

    return validate_config(config)


GRID = (24, 28, 12)  # x (L-R), y, z (axial)
TINY = {"widths": [8, 16, 32]}
FAST = {"epochs": 12, "batch_size": 8, "learning_rate": 3e-3, "threads": 1}


def write_participant(results: Path, label: str, seed: int, shape=GRID, with_target: bool = True) -> np.ndarray:
    """Write one participant's preprocessing derivatives: a lesion bright on DWI, dark on ADC,
    inside a larger Tmax lesion; noise everywhere. Returns the lesion mask (the target)."""
    rng = np.random.default_rng(seed)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-48, -56, -24]
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    centre = np.array([rng.uniform(6, shape[0] - 6), rng.uniform(6, shape[1] - 6), rng.uniform(3, shape[2] - 3)])
    radii = np.array([rng.uniform(3, 5), rng.uniform(3, 5), rng.uniform(2, 3)])
    r = np.sqrt((((grid - centre) / radii) ** 2).sum(-1))
    lesion = r <= 1.0
    hypoperfused = r <= 1.8
    coverage = np.zeros(shape, bool)
    coverage[1:-1, 1:-1, 1:-1] = True
    noise = lambda: rng.normal(0, 0.15, shape)  # noqa: E731
    maps = {
        "DWI": 1.0 + 0.9 * lesion + noise(),
        "ADC": 1.0 - 0.45 * lesion + noise(),
        "Tmax": 1.0 + 2.0 * hypoperfused + noise(),
        "MTT": 1.0 + 0.8 * hypoperfused + noise(),
        "CBF": 1.0 - 0.5 * hypoperfused + noise(),
        "CBV": 1.0 - 0.2 * lesion + noise(),
    }
    for name in MAP_NAMES:
        _save(maps[name] * coverage, affine, preproc_map(results, label, name))
    _save(hypoperfused & coverage, affine, preproc_mask(results, label, "tmax6s"))
    _save((maps["ADC"] < 0.75) & coverage, affine, preproc_mask(results, label, "adc620"))
    _save(coverage, affine, preproc_mask(results, label, "coverage"))
    _save(np.ones(shape, bool), affine, preproc_mask(results, label, "brain"))
    if with_target:
        _save(lesion, affine, final_infarct_mask(results, label))
    return lesion


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))


