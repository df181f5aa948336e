"""Prediction: a probability map on the participant's MNI grid, 0 outside coverage."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from support import FAST, TINY, write_participant
from tissuefate.errors import InputError
from tissuefate.io.derivatives import MAP_NAMES, final_infarct_mask, preproc_map, preproc_mask
from tissuefate.prediction import predict_participant, predict_participants, save_attention_map
from tissuefate.training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    results = tmp_path_factory.mktemp("results")
    for i in range(10):
        write_participant(results, f"{i:03d}", seed=300 + i)
    model = train(TINY, [f"{i:03d}" for i in range(6)], ["006", "007"], tmp_path_factory.mktemp("model"),
                  dict(FAST, epochs=8), results=results)
    return results, model


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


def test_probability_map_on_the_mni_grid(trained, tmp_path):
    results, model = trained
    out = tmp_path / "sub-008_prob.nii.gz"
    img = predict_participant(model, "008", results, out)
    coverage_img = nib.load(str(preproc_mask(results, "008", "coverage")))
    prob = np.asarray(nib.load(str(out)).dataobj)
    assert prob.shape == coverage_img.shape and np.allclose(nib.load(str(out)).affine, coverage_img.affine)
    assert np.array_equal(np.asarray(img.dataobj), prob)
    coverage = np.asarray(coverage_img.dataobj) > 0.5
    assert prob.min() >= 0 and prob.max() <= 1
    assert np.all(prob[~coverage] == 0), "0 outside coverage"
    truth = np.asarray(nib.load(str(final_infarct_mask(results, "008"))).dataobj) > 0.5
    assert _dice(prob > 0.5, truth & coverage) > 0.7
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left"


def _reorient(results: Path, src: str, dst: str, order=(2, 0, 1)) -> None:
    """Copy a participant with its voxel axes permuted (same physical image)."""
    paths = [(preproc_map(results, src, n), preproc_map(results, dst, n)) for n in MAP_NAMES]
    paths += [(preproc_mask(results, src, d), preproc_mask(results, dst, d)) for d in ("tmax6s", "adc620", "coverage", "brain")]
    paths += [(final_infarct_mask(results, src), final_infarct_mask(results, dst))]
    for a, b in paths:
        img = nib.load(str(a))
        affine = img.affine.copy()
        affine[:, :3] = img.affine[:, list(order)]
        b.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.transpose(np.asarray(img.dataobj), order), affine), str(b))


def test_axial_slices_are_found_from_the_affine(trained, tmp_path):
    results, model = trained
    _reorient(results, "009", "909")
    paths = predict_participants(model, ["009", "909"], results, [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"])
    a = np.asarray(nib.load(str(paths[0])).dataobj)
    b = np.asarray(nib.load(str(paths[1])).dataobj)
    assert b.shape == tuple(a.shape[i] for i in (2, 0, 1))
    assert np.allclose(np.transpose(a, (2, 0, 1)), b, atol=1e-5)


def test_attention_map_figure(trained, tmp_path):
    results, model = trained
    png = save_attention_map(model, "008", results, tmp_path / "attention.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_input_is_a_clear_error_and_writes_nothing(trained, tmp_path):
    results, model = trained
    with pytest.raises(InputError, match="sub-404.*missing"):
        predict_participant(model, "404", results, tmp_path / "x.nii.gz")
    with pytest.raises(InputError, match="model is missing"):
        predict_participant(tmp_path / "none.pt", "008", results, tmp_path / "x.nii.gz")
    assert not list(tmp_path.iterdir())
