"""The attention-gated 2.5D U-Net: shapes, attention maps, a frozen encoder, checkpoints."""

from __future__ import annotations

import pytest
import torch

from tissuefate.errors import InputError
from tissuefate.model import (
    AttentionUNet2p5D,
    ModelConfig,
    architecture_record,
    build_model,
    count_parameters,
    folded_for_inference,
    freeze_encoder,
    load_model,
)

TINY = ModelConfig(widths=(4, 8, 16))


def _model(cfg=TINY, seed=0) -> AttentionUNet2p5D:
    torch.manual_seed(seed)
    return AttentionUNet2p5D(cfg)


def test_default_model_takes_40_channels_and_has_about_half_a_million_parameters():
    cfg = ModelConfig()
    assert cfg.in_channels == 40 and cfg.size_multiple == 8
    assert 350_000 < count_parameters(AttentionUNet2p5D(cfg)) < 700_000


def test_output_is_one_logit_map_of_the_centre_slice():
    model = _model().eval()
    x = torch.randn(3, 40, 16, 20)
    logits = model(x)
    assert logits.shape == (3, 1, 16, 20)
    assert torch.allclose(model(x.view(3, 5, 8, 16, 20)), logits)  # (B, slices, channels, H, W) too
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.randn(1, 40, 18, 20))
    with pytest.raises(ValueError, match="40"):
        model(torch.randn(1, 8, 16, 20))


def test_attention_maps_are_coefficients_on_every_skip_connection():
    model = _model().eval()
    with torch.no_grad():
        logits, alphas = model(torch.randn(2, 40, 16, 16), return_attention=True)
    assert [a.shape for a in alphas] == [(2, 1, 8, 8), (2, 1, 16, 16)]  # coarsest gate first
    for a in alphas:
        assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_attention_gate_scales_the_skip_connection():
    model = _model().eval()
    gate = model.decoder.steps[-1].gate
    with torch.no_grad():
        gate.psi.bias.fill_(-1e4)  # alpha -> 0: the gated skip carries no signal
        x, g = torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8)
        out_a, alpha = gate(x, g)
        out_b, _ = gate(torch.randn(1, 4, 16, 16), g)
    assert float(alpha.max()) < 1e-6
    assert torch.allclose(out_a, out_b, atol=1e-5)


def test_frozen_encoder_keeps_weights_and_norm_statistics():
    model = _model()
    freeze_encoder(model)
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    model.train()  # must not put the encoder's batch norms back into training mode
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.decoder.training

    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 40, 16, 16) * 3 + 1).mean().backward()
        optimizer.step()
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, encoder_before[k]), k
    changed = [k for k, v in model.decoder.state_dict().items() if not torch.equal(v, decoder_before[k])]
    assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)


def test_unfrozen_encoder_does_change():
    model = _model().train()
    before = model.encoder.blocks[0][1].running_mean.clone()
    model(torch.randn(2, 40, 16, 16) + 2)
    assert not torch.equal(before, model.encoder.blocks[0][1].running_mean)


def test_checkpoint_round_trip_and_architecture_check(tmp_path):
    model = _model().eval()
    path = tmp_path / "model.pt"
    torch.save({"architecture": architecture_record(TINY), "model": model.state_dict()}, path)
    loaded = load_model(path)
    x = torch.randn(1, 40, 16, 16)
    assert loaded.config == TINY and torch.equal(loaded(x), model(x))
    with pytest.raises(InputError, match="another architecture") as err:
        load_model(path, expected=ModelConfig())
    assert str(path) in str(err.value) and "Fix:" in str(err.value)
    with pytest.raises(InputError, match="is missing"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        load_model(tmp_path / "junk.pt")


def test_config_refuses_unknown_keys_and_even_slice_counts():
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_any({"width": [8, 16]})
    with pytest.raises(ValueError, match="odd"):
        ModelConfig(n_slices=4)
    assert ModelConfig.from_any({"widths": [8, 16, 32]}).depth == 2


def test_model_folded_for_inference_is_the_same_function_in_another_order():
    torch.manual_seed(3)
    model = build_model(ModelConfig(widths=(8, 16, 32)))
    for m in model.modules():  # trained-looking batch-norm statistics, not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.3, 3.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(3, model.config.in_channels, 32, 40)
    with torch.no_grad():
        ref = model(x)
        folded = folded_for_inference(model)
        out = folded(x.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 0  # the original is untouched
    assert folded.encoder.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert float((out - ref).abs().max()) < 1e-5 * float(ref.abs().max())
    # Dropping the batch-norm instead of folding it would be far off.
    dropped = folded_for_inference(model)
    for seq in dropped.modules():
        for m in seq.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None and m.kernel_size == (3, 3):
                m.bias.data.zero_()
    with torch.no_grad():
        assert float((dropped(x) - ref).abs().max()) > 1e-2 * float(ref.abs().max())
