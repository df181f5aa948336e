"""A trained model applied to a participant: an infarct probability map in MNI space.

The map has the grid and affine of the participant's preprocessed maps, holds the sigmoid
of the model's logits inside the coverage mask and 0 outside (METHOD.md section 4: only
voxels with diffusion and perfusion coverage are predicted). Mapping back to the patient's
native space belongs to preprocessing (it owns the inverse transform).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import torch

from tissuefate.config import section_defaults
from tissuefate.dataset import ParticipantVolumes, SliceDataset, load_participant
from tissuefate.io.atomic import atomic_path
from tissuefate.io.nifti import save_image
from tissuefate.model import AttentionUNet2p5D, folded_for_inference, load_model

_BATCH_SIZE = section_defaults("training")["batch_size"]


def _autocast(device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _slice_batches(data: SliceDataset, batch_size: int,
                   channels_last: bool = False) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(centre slices, 2.5D inputs, coverage) per batch, in the order ``predict_volume`` runs them."""
    index = data.sample_slices
    out = []
    for start in range(0, len(index), batch_size):
        idx = index[start : start + batch_size]
        x, cov, _ = data.batch(idx)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append((idx, x, cov))
    return out


@torch.no_grad()
def _predict_batches(model: AttentionUNet2p5D, volumes: ParticipantVolumes, data: SliceDataset, batches: list,
                     device: torch.device) -> np.ndarray:
    model = model.to(device).eval()
    prob = torch.zeros(data.coverage.shape, dtype=torch.float32, device=device)
    for idx, x, cov in batches:
        with _autocast(device):
            logits = model(x)
        prob[idx] = torch.sigmoid(logits[:, 0].float()) * cov
    return volumes.to_file_grid(data.unpad(prob.cpu().numpy(), 0))


def predict_volume(
    model: AttentionUNet2p5D,
    volumes: ParticipantVolumes,
    batch_size: int = _BATCH_SIZE,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Probability per voxel, in the NIfTI file's voxel order; 0 outside coverage."""
    device = torch.device(device)
    data = SliceDataset([volumes], model.config.n_slices, model.config.size_multiple, device=device)
    return _predict_batches(model, volumes, data, _slice_batches(data, batch_size), device)


def predict_ensemble(
    models: Sequence[AttentionUNet2p5D | str | Path],
    volumes: ParticipantVolumes,
    *,
    workers: int = 1,
    batch_size: int = _BATCH_SIZE,
    device: str | torch.device = "cpu",
    exact: bool = True,
) -> list[np.ndarray]:
    """``predict_volume`` of every model (or checkpoint path) on one participant, in the order
    given: on the CPU each model runs with one intra-op thread, so every map is bit for bit
    ``predict_volume``'s with ``torch.set_num_threads(1)`` (the study's prediction jobs with
    ``training.resources.threads: 1``, as in config/config.yaml and config/ci.yaml; with more
    threads oneDNN may sum in another order: maps differ in the last float bit, ~6e-8).

    ``exact=False``: each model in its inference-only form (:func:`~tissuefate.model.folded_for_inference`:
    batch-norm folded into the convolutions, channels-last), about 1.4x faster on the CPU; the
    maps then differ from the study's in the last float bits (~1e-7), not bit for bit.

    Cheaper than one call per model: the 2.5D batches are built once for all models of the
    same slice geometry, and ``workers`` models run side by side (two models on two cores
    scale better than two OpenMP threads per convolution, which also spin at their barriers
    and cost about twice the CPU time when the machine is busy)."""
    device = torch.device(device)
    shared: dict[tuple[int, int], tuple[SliceDataset, list]] = {}
    lock = threading.Lock()

    def run(item) -> np.ndarray:
        loaded = isinstance(item, (str, Path))
        model = load_model(item) if loaded else item
        if not exact:
            model = folded_for_inference(model, inplace=loaded)
        key = (model.config.n_slices, model.config.size_multiple)
        with lock:
            if key not in shared:
                data = SliceDataset([volumes], *key, device=device)
                shared[key] = (data, _slice_batches(data, batch_size, channels_last=not exact))
        data, batches = shared[key]
        return _predict_batches(model, volumes, data, batches, device)

    if device.type != "cpu":
        return [run(m) for m in models]
    workers = max(1, min(int(workers), len(models)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers == 1:
            return [run(m) for m in models]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, models))
    finally:
        torch.set_num_threads(threads)


def predict_participant(
    model_path: str | Path,
    label: str,
    results: str | Path,
    out_path: str | Path,
    *,
    model: AttentionUNet2p5D | None = None,
    device: str = "cpu",
    batch_size: int = _BATCH_SIZE,
) -> nib.Nifti1Image:
    """Predict one participant with the model in ``model_path``; write the map atomically.

    ``model``: an already loaded model (skips reading ``model_path`` again).
    """
    if model is None:
        model = load_model(model_path)
    volumes = load_participant(results, label, with_target=False)
    prob = predict_volume(model, volumes, batch_size=batch_size, device=device)
    save_image(prob.astype(np.float32), volumes.affine, out_path)
    return nib.load(str(out_path))


def predict_participants(
    model_path: str | Path,
    labels: list[str],
    results: str | Path,
    out_paths: list[str | Path],
    *,
    device: str = "cpu",
    threads: int | None = None,
) -> list[Path]:
    """One prediction rule per model: every listed participant through the same model."""
    if len(labels) != len(out_paths):
        raise ValueError(f"{len(labels)} participants but {len(out_paths)} output paths")
    if threads:
        torch.set_num_threads(int(threads))
    model = load_model(model_path)
    for label, out in zip(labels, out_paths):
        predict_participant(model_path, label, results, out, model=model, device=device)
    return [Path(p) for p in out_paths]


@torch.no_grad()
def save_attention_map(
    model_path: str | Path,
    label: str,
    results: str | Path,
    out_png: str | Path,
    *,
    gate: int = -1,
    title: str = "",
) -> Path:
    """A report figure: Tmax, DWI, one attention gate's coefficients and the prediction.

    The axial slice is the one with the largest predicted lesion (else the most coverage);
    ``gate``: which attention gate, -1 the finest (full resolution), 0 the coarsest.
    """
    from matplotlib.figure import Figure

    from tissuefate.io.derivatives import CHANNELS

    model = load_model(model_path)
    volumes = load_participant(results, label, with_target=False)
    data = SliceDataset([volumes], model.config.n_slices, model.config.size_multiple)
    index = data.sample_slices
    probs, alphas = [], []
    for start in range(0, len(index), 16):
        x, cov, _ = data.batch(index[start : start + 16])
        logits, att = model(x, return_attention=True)
        probs.append(torch.sigmoid(logits[:, 0]) * cov)
        alphas.append(torch.nn.functional.interpolate(att[gate], size=x.shape[-2:], mode="bilinear")[:, 0])
    prob, alpha = torch.cat(probs), torch.cat(alphas)
    score = (prob > 0.5).flatten(1).sum(1).float()
    if float(score.max()) == 0:
        score = data.coverage[index].flatten(1).sum(1)
    k = int(torch.argmax(score))
    a, b = data.in_plane[0]

    def show(img: torch.Tensor) -> np.ndarray:
        # Rows: the L-R axis horizontal, superior-anterior up, as radiologists view axial slices.
        arr = img[:a, :b].numpy()
        return np.rot90(arr if data.lr_dim == -2 else arr.T)

    centre = int(index[k])
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = [
        (data.inputs[centre, CHANNELS.index("Tmax")], "Tmax (normalized)", "magma", None),
        (data.inputs[centre, CHANNELS.index("DWI")], "DWI (normalized)", "gray", None),
        (alpha[k], f"attention gate {gate} (alpha)", "viridis", (0, 1)),
        (prob[k], "infarct probability", "hot", (0, 1)),
    ]
    for ax, (img, name, cmap, lim) in zip(axes, panels):
        im = ax.imshow(show(img), cmap=cmap, vmin=None if lim is None else lim[0], vmax=None if lim is None else lim[1])
        ax.set_title(name)
        ax.axis("off")
        fig.colorbar(im, ax=ax, shrink=0.8)
    z = centre - data.slice_ranges[0][0]
    fig.suptitle(f"{title or Path(model_path).parent.name}: sub-{volumes.label}, axial slice {z}")
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return out_png
