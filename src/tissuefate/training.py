"""Training one model: pretraining, frozen-encoder fine-tuning, or training from scratch.

One training job = one call of :func:`train` (or :func:`train_job`, which reads the
patients from splits.json). Outputs in ``out_dir``:

- ``model.pt``: the model with the best validation Dice, with its architecture and the
  training record inside (written atomically, only when training finished);
- ``curves.tsv`` (epoch, train_loss, val_loss, val_dice) and ``curves.png``;
- ``checkpoint/last.pt``: written atomically after every epoch so a killed job resumes where
  it stopped; removed once ``model.pt`` is written.

Loss (ours, METHOD.md section 5): ``bce_weight * BCE + dice_weight * (1 - soft Dice)``, both
over coverage voxels only, soft Dice pooled over the batch. Optimiser: Adam. Augmentation:
random left-right mirroring (the template is symmetric). On CPU the run is bit-for-bit
deterministic for a seed; on CUDA it runs under bf16 autocast.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tissuefate.config import section, section_defaults
from tissuefate.dataset import SliceDataset, load_dataset
from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_path, atomic_write_text
from tissuefate.measures import dice_from_counts
from tissuefate.model import (
    AttentionUNet2p5D,
    ModelConfig,
    architecture_record,
    check_architecture,
    config_from_checkpoint,
    freeze_encoder as _freeze_encoder,
    read_checkpoint,
)

log = logging.getLogger(__name__)

# Config section ``training:`` and its defaults (from the config schema; ``resources`` is the
# workflow's), plus the seed (the config's top-level one).
DEFAULTS = {**{k: v for k, v in section_defaults("training").items() if k != "resources"}, "seed": 0}

LOSS_DESCRIPTION = "bce_weight * masked BCE + dice_weight * (1 - masked soft Dice pooled over the batch)"
CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice")


def training_outputs(out_dir: str | Path) -> dict[str, Path]:
    """The files a training job writes (declare model, curves_tsv and curves_png as outputs)."""
    out_dir = Path(out_dir)
    return {
        "model": out_dir / "model.pt",
        "curves_tsv": out_dir / "curves.tsv",
        "curves_png": out_dir / "curves.png",
        "checkpoint": out_dir / "checkpoint" / "last.pt",
    }


def training_config(cfg: dict | None) -> dict:
    """The training settings with the schema's defaults (checked against the schema)."""
    cfg = dict(cfg or {})
    seed = cfg.pop("seed", DEFAULTS["seed"])
    merged = section({"training": cfg}, "training")
    merged.pop("resources", None)
    return {**merged, "seed": seed}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("training.device asks for CUDA but no GPU is visible", path="config",
                         fix="set training.device to auto or cpu, or run the job on a GPU node")
    return device


def masked_loss(logits: torch.Tensor, target: torch.Tensor, coverage: torch.Tensor,
                bce_weight: float = DEFAULTS["bce_weight"], dice_weight: float = DEFAULTS["dice_weight"]) -> torch.Tensor:
    """BCE and soft-Dice loss over coverage voxels; ``logits`` (B, 1, H, W), masks (B, H, W)."""
    logits = logits[:, 0].float()
    n = coverage.sum().clamp_min(1.0)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * coverage).sum() / n
    p = torch.sigmoid(logits) * coverage
    dice = (2 * (p * target).sum() + 1.0) / (p.sum() + (target * coverage).sum() + 1.0)
    return bce_weight * bce + dice_weight * (1.0 - dice)


def dice_score(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Dice per patient; 1 when truth and prediction are both empty."""
    return dice_from_counts(tp, fp, fn, empty=1.0)


@torch.no_grad()
def evaluate(model: AttentionUNet2p5D, data: SliceDataset, cfg: dict, device: torch.device) -> tuple[float, np.ndarray]:
    """Mean loss over the slices with coverage and Dice (threshold 0.5) per participant."""
    was_training = model.training
    model.eval()
    counts = torch.zeros(data.n_participants, 3, dtype=torch.float64, device=data.device)
    total, n = 0.0, 0
    index = data.sample_slices
    for start in range(0, len(index), int(cfg["eval_batch_size"])):
        idx = index[start : start + int(cfg["eval_batch_size"])]
        x, cov, y = data.batch(idx)
        with _autocast(device):
            logits = model(x.to(device))
        cov, y = cov.to(device), y.to(device)
        total += float(masked_loss(logits, y, cov, cfg["bce_weight"], cfg["dice_weight"])) * len(idx)
        n += len(idx)
        pred = (logits[:, 0].float() >= 0).float() * cov  # probability >= 0.5, as in metrics.py
        per_slice = torch.stack([(pred * y).flatten(1).sum(1), (pred * (1 - y)).flatten(1).sum(1),
                                 ((1 - pred) * y * cov).flatten(1).sum(1)], dim=1)
        counts.index_add_(0, data.patient[idx], per_slice.to(counts))
    model.train(was_training)
    c = counts.cpu().numpy()
    return total / max(n, 1), dice_score(c[:, 0], c[:, 1], c[:, 2])


def deterministic_algorithms(mode: bool, warn_only: bool = False) -> None:
    """``torch.use_deterministic_algorithms(mode, warn_only=...)`` without its import of inductor.

    torch 2.13's function also sets ``torch._inductor.config.deterministic`` and so imports
    torch._inductor and torch._dynamo, about 3 CPU s in every training job. Nothing here compiles
    a model: the eager kernels read ATen's flag only, which is set alone unless inductor is
    already loaded (then both, as torch does) or this torch lacks the setter.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


def _autocast(device: torch.device):
    # bf16 on the GPU only: the CPU path stays float32 and bit-for-bit reproducible.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(obj: dict, path: Path) -> None:
    # Serialized in memory first: torch.save names the archive's records after the file it
    # writes, and the atomic temp file's name is random, so the same weights gave different
    # bytes (and bundle checksums) run to run; from a buffer the records are named "archive".
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_curves_tsv(history: list[dict], path: Path) -> None:
    lines = ["\t".join(CURVE_COLUMNS)]
    for row in history:
        lines.append("\t".join([str(row["epoch"])] + [repr(float(row[c])) for c in CURVE_COLUMNS[1:]]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state in a library

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    ax1.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in history], marker="o", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (BCE + 1 - soft Dice)")
    ax1.legend()
    ax2.plot(epochs, [r["val_dice"] for r in history], marker="o", color="C2")
    if history:
        best = max(history, key=lambda r: r["val_dice"])
        ax2.axvline(best["epoch"], color="grey", ls="--", lw=1, label=f"selected (epoch {best['epoch']})")
        ax2.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mean validation Dice")
    ax2.set_ylim(0, 1)
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def _check_patients(train_ids: list[str], val_ids: list[str], where: str, out_dir) -> None:
    if not train_ids:
        raise InputError(f"{where}: no eligible patients to train on", path=out_dir,
                         fix="check splits.json; the cohort needs more patients in this reperfusion group")
    if not val_ids:
        raise InputError(f"{where}: no validation patients for model selection", path=out_dir,
                         fix="check splits.json; the cohort needs more patients in this reperfusion group")
    if set(train_ids) & set(val_ids):
        raise InputError(f"{where}: training and validation share patients {sorted(set(train_ids) & set(val_ids))}",
                         path=out_dir, fix="rewrite splits.json with tissuefate.splits.write_splits")


def _architecture(model_init, pretrained: Path | None, freeze_encoder: bool) -> tuple[ModelConfig, dict | None]:
    """The model's architecture and the pretrained checkpoint (None without one)."""
    if pretrained is None:
        if freeze_encoder:
            raise ValueError("freeze_encoder=True needs a pretrained model (an untrained encoder would stay random)")
        return ModelConfig.from_any(model_init), None
    ckpt = read_checkpoint(pretrained, what="pretrained model",
                           fix="run the pretrain job first, or point `pretrained` at its model.pt")
    if model_init is None:
        return config_from_checkpoint(ckpt), ckpt
    model_cfg = ModelConfig.from_any(model_init)
    check_architecture(ckpt, model_cfg, pretrained)
    return model_cfg, ckpt


class Trainer:
    """One model's training loop in named steps: build, resume from / save a checkpoint,
    train one epoch, validate, and the final record (the best epoch's weights)."""

    def __init__(self, model_cfg: ModelConfig, cfg: dict, device: torch.device, train_data: SliceDataset,
                 val_data: SliceDataset, out: dict[str, Path], fingerprint: str, where: str,
                 pretrained_ckpt: dict | None, freeze_encoder: bool) -> None:
        self.cfg, self.device, self.out, self.fingerprint, self.where = cfg, device, out, fingerprint, where
        self.train_data, self.val_data = train_data, val_data
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg["seed"]))
            self.model = AttentionUNet2p5D(model_cfg)
        if pretrained_ckpt is not None:
            self.model.load_state_dict(pretrained_ckpt["model"])
        if freeze_encoder:
            _freeze_encoder(self.model)
        self.model.to(device)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad],
                                          lr=float(cfg["learning_rate"]), weight_decay=float(cfg["weight_decay"]))
        self.start_epoch, self.history = 1, []
        self.best = {"dice": -math.inf, "epoch": 0, "state": None}

    def load_checkpoint(self) -> None:
        """Continue after the last finished epoch when the checkpoint is of these settings."""
        if not self.out["checkpoint"].exists():
            return
        try:
            ckpt = torch.load(self.out["checkpoint"], map_location=self.device, weights_only=True)
        except Exception:
            ckpt = None  # unreadable (should not happen with atomic writes): start over
        if ckpt is not None and ckpt.get("fingerprint") == self.fingerprint:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.start_epoch, self.history = int(ckpt["epoch"]) + 1, list(ckpt["history"])
            self.best = {"dice": float(ckpt["best_dice"]), "epoch": int(ckpt["best_epoch"]), "state": ckpt["best_state"]}
            log.info("%s: resuming after epoch %d of %d from %s", self.where, self.start_epoch - 1,
                     int(self.cfg["epochs"]), self.out["checkpoint"])

    def save_checkpoint(self, epoch: int) -> None:
        _save({"fingerprint": self.fingerprint, "epoch": epoch, "model": self.model.state_dict(),
               "optimizer": self.optimizer.state_dict(), "history": self.history, "best_dice": self.best["dice"],
               "best_epoch": self.best["epoch"], "best_state": self.best["state"]}, self.out["checkpoint"])

    def train_epoch(self, epoch: int) -> float:
        """One epoch over ``samples_per_epoch`` centre slices; returns the mean training loss."""
        cfg, data = self.cfg, self.train_data
        n_samples = len(data.sample_slices)
        per_epoch = int(cfg["samples_per_epoch"] or n_samples)
        batch_size = int(cfg["batch_size"])
        # The shuffle depends on (seed, epoch) only, so a resumed run draws the same batches.
        gen = torch.Generator().manual_seed(int(cfg["seed"]) * 100_003 + epoch)
        order = torch.cat([torch.randperm(n_samples, generator=gen) for _ in range(-(-per_epoch // n_samples))])
        index = data.sample_slices.cpu()[order[:per_epoch]]
        flips = torch.rand(per_epoch, generator=gen) < 0.5 if cfg["augment_flip_lr"] else None
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # no GPU sync per step
        for start in range(0, per_epoch, batch_size):
            idx = index[start : start + batch_size]
            x, cov, y = data.batch(idx, None if flips is None else flips[start : start + batch_size])
            self.optimizer.zero_grad(set_to_none=True)
            with _autocast(self.device):
                logits = self.model(x)
            loss = masked_loss(logits, y, cov, cfg["bce_weight"], cfg["dice_weight"])
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach().double() * len(idx)
        return float(loss_sum) / per_epoch

    def validate(self) -> tuple[float, np.ndarray]:
        """Validation loss and Dice per validation patient."""
        return evaluate(self.model, self.val_data, self.cfg, self.device)

    def fit(self, on_epoch_end: Callable[[int, dict], None] | None = None) -> None:
        """The remaining epochs; a checkpoint and the curves after each, the best epoch kept."""
        for epoch in range(self.start_epoch, int(self.cfg["epochs"]) + 1):
            t0 = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            val_loss, dices = self.validate()
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                   "val_dice": float(dices.mean()), "seconds": time.perf_counter() - t0}
            self.history.append(row)
            if row["val_dice"] > self.best["dice"]:
                self.best = {"dice": row["val_dice"], "epoch": epoch,
                             "state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}
            self.save_checkpoint(epoch)
            write_curves_tsv(self.history, self.out["curves_tsv"])
            log.info("%s: epoch %d/%d, train loss %.4f, validation loss %.4f, validation Dice %.3f (%.1f s)",
                     self.where, epoch, int(self.cfg["epochs"]), row["train_loss"], row["val_loss"], row["val_dice"],
                     row["seconds"])
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)


def train(
    model_init: ModelConfig | dict | None,
    train_ids: list[str],
    val_ids: list[str],
    out_dir: str | Path,
    cfg: dict | None,
    resume: bool = True,
    pretrained: str | Path | None = None,
    freeze_encoder: bool = False,
    *,
    results: str | Path,
    title: str = "",
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> Path:
    """Train one model and write ``out_dir/model.pt`` (see the module docstring).

    ``model_init``: architecture (config section ``model:``); None takes the pretrained
    model's. ``pretrained``: a model.pt whose weights initialise the model (fine-tuning);
    its architecture must equal ``model_init``. ``freeze_encoder``: train the decoder only.
    ``results``: the results folder holding the preprocessing derivatives.
    ``on_epoch_end(epoch, row)`` runs after each epoch's checkpoint is written.
    Returns the path of model.pt.
    """
    cfg = training_config(cfg)
    out = training_outputs(out_dir)
    train_ids, val_ids = [str(p) for p in train_ids], [str(p) for p in val_ids]
    where = title or str(out_dir)
    _check_patients(train_ids, val_ids, where, out_dir)
    pretrained = None if pretrained is None else Path(pretrained)
    model_cfg, pretrained_ckpt = _architecture(model_init, pretrained, freeze_encoder)

    device = resolve_device(cfg["device"])
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    # Every input is read and checked before anything is written.
    train_data = load_dataset(results, train_ids, model_cfg.n_slices, model_cfg.size_multiple, device=device)
    val_data = load_dataset(results, val_ids, model_cfg.n_slices, model_cfg.size_multiple, device=device)
    if len(train_data.sample_slices) == 0:
        raise InputError(f"{where}: no training slice has coverage", path=out_dir, fix="check the coverage masks")

    fingerprint = hashlib.sha256(json.dumps({
        "cfg": {k: v for k, v in cfg.items() if k not in ("device", "threads")},
        "model": model_cfg.to_dict(), "train": train_ids, "val": val_ids,
        "pretrained": None if pretrained is None else _file_sha256(pretrained),
        "freeze_encoder": bool(freeze_encoder),
    }, sort_keys=True).encode()).hexdigest()

    # A stale model from an earlier run must not pass for this run's result.
    out["model"].unlink(missing_ok=True)

    previous_determinism = torch.are_deterministic_algorithms_enabled()
    deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        trainer = Trainer(model_cfg, cfg, device, train_data, val_data, out, fingerprint, where,
                          pretrained_ckpt, freeze_encoder)
        if resume:
            trainer.load_checkpoint()
        trainer.fit(on_epoch_end)
        plot_curves(trainer.history, out["curves_png"], title)
        write_curves_tsv(trainer.history, out["curves_tsv"])
        record = {
            "architecture": architecture_record(model_cfg),
            "model": trainer.best["state"],
            "training": {
                "config": cfg, "loss": LOSS_DESCRIPTION, "optimizer": "Adam",
                "best_epoch": trainer.best["epoch"], "best_val_dice": trainer.best["dice"],
                "train_ids": train_ids, "val_ids": val_ids,
                "pretrained": None if pretrained is None else str(pretrained),
                "freeze_encoder": bool(freeze_encoder), "device": str(device),
                "torch": str(torch.__version__), "title": title,
            },
        }
        _save(record, out["model"])
        shutil.rmtree(out["checkpoint"].parent, ignore_errors=True)
        return out["model"]
    finally:
        deterministic_algorithms(previous_determinism)


def train_job(
    config: dict,
    splits_path: str | Path,
    out_dir: str | Path,
    approach: str,
    target: str | None = None,
    fold: int | None = None,
    pretrained: str | Path | None = None,
    threads: int | None = None,
    patients: dict | None = None,
) -> Path:
    """One Snakemake training rule: the job's patients (``patients``, ``{"train", "val", ...}``,
    as the workflow passes them; else read from splits.json) and train.

    ``config``: the whole pipeline config (keys results_dir, seed, model, training).
    ``approach``: "pretrain" (the shared pretraining job), "pretraining" (fine-tune the
    decoder of ``pretrained`` for ``target`` fold ``fold``) or "separate" (from scratch).
    """
    from tissuefate.splits import job_patients, load_splits

    if patients is None:
        patients = job_patients(load_splits(splits_path), approach, target, fold)
    if approach == "pretraining" and pretrained is None:
        raise ValueError("approach 'pretraining' fine-tunes the pretrained model: pass pretrained=<pretrain model.pt>")
    # training.resources (gpus, mem_mb, runtime, threads of the rule) is the workflow's, not ours.
    training = {k: v for k, v in section(config, "training").items() if k != "resources"}
    cfg = {"seed": config.get("seed", DEFAULTS["seed"]), **training}
    if threads is not None:
        cfg["threads"] = threads
    title = "pretrain" if approach == "pretrain" else f"{approach}/{target}/fold-{fold}"
    return train(
        section(config, "model"),
        patients["train"], patients["val"], out_dir, cfg,
        resume=True,
        pretrained=pretrained if approach == "pretraining" else None,
        freeze_encoder=approach == "pretraining",
        results=config.get("results_dir", "results"),
        title=title,
    )
