"""Training: it learns a synthetic lesion, is deterministic, resumes, freezes, refuses bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from support import FAST, TINY, write_participant
from tissuefate.errors import InputError
from tissuefate.model import AttentionUNet2p5D, ModelConfig
from tissuefate.training import evaluate, masked_loss, train, training_outputs

@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> tuple[Path, list[str]]:
    results = tmp_path_factory.mktemp("results")
    labels = [f"{i:03d}" for i in range(1, 11)]
    for i, label in enumerate(labels):
        write_participant(results, label, seed=100 + i)
    return results, labels


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def reference_run(cohort, tmp_path_factory) -> Path:
    """A short uninterrupted run: the baseline for determinism, resume and fine-tuning."""
    results, labels = cohort
    out = tmp_path_factory.mktemp("reference")
    return train(TINY, labels[:6], labels[6:8], out, dict(FAST, epochs=3), results=results)


def test_it_learns_the_synthetic_lesion(cohort, tmp_path):
    results, labels = cohort
    model_path = train(TINY, labels[:6], labels[6:8], tmp_path / "run", dict(FAST, epochs=8), results=results)
    from tissuefate.dataset import load_dataset
    from tissuefate.model import load_model
    from tissuefate.training import training_config

    held_out = load_dataset(results, labels[8:], 5, 4)
    cfg, cpu = training_config({}), torch.device("cpu")
    _, trained = evaluate(load_model(model_path), held_out, cfg, cpu)
    torch.manual_seed(0)
    _, untrained = evaluate(AttentionUNet2p5D(ModelConfig(**TINY)), held_out, cfg, cpu)
    assert trained.mean() > 0.7, trained
    assert trained.mean() > untrained.mean() + 0.4, (trained, untrained)


def test_outputs_and_record(reference_run, cohort):
    out = training_outputs(reference_run.parent)
    assert out["model"].exists() and out["curves_png"].read_bytes()[:4] == b"\x89PNG"
    assert not out["checkpoint"].exists(), "the resume checkpoint is removed once model.pt is written"
    curves = pd.read_csv(out["curves_tsv"], sep="\t")
    assert list(curves.columns) == ["epoch", "train_loss", "val_loss", "val_dice"]
    assert curves["epoch"].tolist() == [1, 2, 3]
    ckpt = torch.load(out["model"], map_location="cpu", weights_only=True)
    assert ckpt["architecture"]["widths"] == TINY["widths"]
    assert ckpt["training"]["best_epoch"] == int(curves["val_dice"].idxmax()) + 1
    assert ckpt["training"]["best_val_dice"] == pytest.approx(curves["val_dice"].max())
    assert ckpt["training"]["train_ids"] == cohort[1][:6]


def test_training_is_deterministic_on_cpu(reference_run, cohort, tmp_path):
    results, labels = cohort
    again = train(TINY, labels[:6], labels[6:8], tmp_path / "again", dict(FAST, epochs=3), results=results)
    assert _same_weights(_state(reference_run), _state(again))
    assert (tmp_path / "again" / "curves.tsv").read_text() == (reference_run.parent / "curves.tsv").read_text()
    # The file itself too (the bundle lists its checksum): no temp-file name or id in the archive.
    assert (tmp_path / "again" / "model.pt").read_bytes() == reference_run.read_bytes()


class Killed(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_model(reference_run, cohort, tmp_path):
    results, labels = cohort
    out = tmp_path / "killed"

    def kill(epoch, row):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train(TINY, labels[:6], labels[6:8], out, dict(FAST, epochs=3), results=results, on_epoch_end=kill)
    assert not (out / "model.pt").exists(), "no model before training finished"
    assert (out / "checkpoint" / "last.pt").exists()
    epochs_run = []
    train(TINY, labels[:6], labels[6:8], out, dict(FAST, epochs=3), results=results,
          on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [3], "resumed after the last checkpoint"
    assert _same_weights(_state(reference_run), _state(out / "model.pt"))
    assert (out / "curves.tsv").read_text() == (reference_run.parent / "curves.tsv").read_text()


def test_a_checkpoint_of_other_settings_is_not_resumed(reference_run, cohort, tmp_path):
    results, labels = cohort
    out = tmp_path / "changed"

    def kill(epoch, row):
        raise Killed

    with pytest.raises(Killed):
        train(TINY, labels[:6], labels[6:8], out, dict(FAST, epochs=3, learning_rate=1e-2), results=results, on_epoch_end=kill)
    epochs_run = []
    train(TINY, labels[:6], labels[6:8], out, dict(FAST, epochs=3), results=results,
          on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [1, 2, 3]
    assert _same_weights(_state(reference_run), _state(out / "model.pt"))


def test_fine_tuning_keeps_the_encoder_and_trains_the_decoder(reference_run, cohort, tmp_path):
    results, labels = cohort
    tuned = train(None, labels[6:9], labels[9:], tmp_path / "tuned", dict(FAST, epochs=2), results=results,
                  pretrained=reference_run, freeze_encoder=True)
    before, after = _state(reference_run), _state(tuned)
    encoder = [k for k in before if k.startswith("encoder.")]
    decoder = [k for k in before if k.startswith("decoder.")]
    assert any(k.endswith("running_mean") for k in encoder)
    for k in encoder:  # weights and batch-norm statistics alike
        assert torch.equal(before[k], after[k]), k
    changed = [k for k in decoder if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(changed) > len(decoder) // 4
    record = torch.load(tuned, map_location="cpu", weights_only=True)["training"]
    assert record["freeze_encoder"] and record["pretrained"] == str(reference_run)


def test_masked_loss_ignores_voxels_outside_coverage():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=g)
    target = (torch.rand(2, 8, 8, generator=g) > 0.7).float()
    coverage = torch.zeros(2, 8, 8)
    coverage[:, 2:6, 2:6] = 1
    other = logits.clone()
    other[:, :, :2] = 50.0
    assert torch.equal(masked_loss(logits, target, coverage), masked_loss(other, target, coverage))
    inside = logits.clone()
    inside[:, :, 3, 3] += 5
    assert not torch.equal(masked_loss(logits, target, coverage), masked_loss(inside, target, coverage))


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*"))


def test_missing_pretrained_model_is_a_clear_error(cohort, tmp_path):
    results, labels = cohort
    missing = tmp_path / "pretrain" / "model.pt"
    with pytest.raises(InputError, match="pretrained model is missing") as err:
        train(TINY, labels[:2], labels[2:3], tmp_path / "out", FAST, results=results, pretrained=missing, freeze_encoder=True)
    assert str(missing) in str(err.value) and "Fix:" in str(err.value)
    assert _nothing_written(tmp_path / "out")


def test_checkpoint_of_another_architecture_is_a_clear_error(reference_run, cohort, tmp_path):
    results, labels = cohort
    with pytest.raises(InputError, match="another architecture") as err:
        train({"widths": [8, 16]}, labels[:2], labels[2:3], tmp_path / "out", FAST, results=results,
              pretrained=reference_run, freeze_encoder=True)
    assert str(reference_run) in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not a tissuefate"):
        train(None, labels[:2], labels[2:3], tmp_path / "out", FAST, results=results, pretrained=foreign, freeze_encoder=True)
    assert _nothing_written(tmp_path / "out")


def test_no_eligible_patients_is_a_clear_error(cohort, tmp_path):
    results, labels = cohort
    with pytest.raises(InputError, match="no eligible patients"):
        train(TINY, [], labels[:1], tmp_path / "out", FAST, results=results, title="separate/ischemic_core/fold-1")
    with pytest.raises(InputError, match="no validation patients"):
        train(TINY, labels[:1], [], tmp_path / "out", FAST, results=results)
    with pytest.raises(InputError, match="missing"):
        train(TINY, labels[:1] + ["999"], labels[1:2], tmp_path / "out", FAST, results=results)
    assert _nothing_written(tmp_path / "out")


def test_train_job_reads_its_patients_from_the_splits(cohort, tmp_path):
    import json

    from tissuefate.training import train_job

    results, labels = cohort
    folds = [{"train": labels[:3], "val": labels[3:4], "test": labels[4:5]}] * 5
    splits = {"pretraining": {"train": labels[5:8], "val": labels[8:9]}, "tissue_at_risk": {"folds": folds},
              "ischemic_core": {"folds": folds}}
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    config = {"seed": 1, "results_dir": str(results), "model": TINY,
              "training": dict(FAST, epochs=1, resources={"gpus": 0})}
    pre = train_job(config, tmp_path / "splits.json", tmp_path / "pretrain", "pretrain")
    assert torch.load(pre, weights_only=True)["training"]["train_ids"] == labels[5:8]
    with pytest.raises(ValueError, match="pretrained"):
        train_job(config, tmp_path / "splits.json", tmp_path / "ft", "pretraining", "tissue_at_risk", 1)
    tuned = train_job(config, tmp_path / "splits.json", tmp_path / "ft", "pretraining", "tissue_at_risk", 1, pretrained=pre)
    record = torch.load(tuned, weights_only=True)["training"]
    assert record["freeze_encoder"] and record["train_ids"] == labels[:3] and record["title"] == "pretraining/tissue_at_risk/fold-1"


def test_deterministic_flag_is_torchs_own_without_importing_inductor():
    # training.deterministic_algorithms sets the flag torch.use_deterministic_algorithms sets
    # for eager kernels, and skips its import of torch._inductor (~3 CPU s a training job).
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from tissuefate.training import deterministic_algorithms\n"
        "deterministic_algorithms(True, warn_only=True)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "deterministic_algorithms(True)\n"
        "assert not torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "assert 'torch._inductor' not in sys.modules, 'inductor imported'\n"
        "deterministic_algorithms(False)\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "import torch._inductor.config as c\n"
        "deterministic_algorithms(True)\n"
        "assert c.deterministic and torch.are_deterministic_algorithms_enabled()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
