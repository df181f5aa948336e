"""The attention-gated 2.5D U-Net of METHOD.md section 5.

Input: 5 consecutive axial slices x 8 channels (DWI, ADC, Tmax, MTT, CBF, CBV, Tmax > 6 s
mask, ADC < 620 mask) = 40 channels, slice-major (channel index = slice * 8 + map).
Output: one logit per voxel of the centre slice; sigmoid gives the infarct probability.

Encoder and decoder are separate submodules so fine-tuning can freeze the encoder (its
weights *and* its batch-norm statistics) and train the decoder only (METHOD.md section 6).
Attention gates follow Oktay et al. 2018 (additive attention, gating signal from the
coarser decoder level, attention coefficients resampled to the skip connection's grid).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from tissuefate.config import section_defaults
from tissuefate.errors import InputError
from tissuefate.io.derivatives import CHANNELS

ARCHITECTURE = "AttentionUNet2p5D"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (config section ``model:``)."""

    n_slices: int = section_defaults("model")["n_slices"]
    n_channels: int = len(CHANNELS)
    # Feature widths per resolution level; depth (number of 2x poolings) = len(widths) - 1.
    widths: tuple[int, ...] = field(default=tuple(section_defaults("model")["widths"]))

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.n_slices < 1 or self.n_slices % 2 == 0:
            raise ValueError(f"model.n_slices must be odd and positive (centre slice), got {self.n_slices}")
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"model.widths needs at least two positive widths, got {self.widths}")

    @property
    def in_channels(self) -> int:
        return self.n_slices * self.n_channels

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def size_multiple(self) -> int:
        """Slice height and width must be multiples of this (2 ** depth)."""
        return 2**self.depth

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_any(cls, value: "ModelConfig | dict | None") -> "ModelConfig":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        value = {k: v for k, v in dict(value).items() if k not in ("name", "format")}
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"model: unknown key(s) {', '.join(unknown)}; known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**value)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """Conv blocks with 2x max pooling; returns the skip features and the bottleneck."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = (cfg.in_channels,) + cfg.widths
        self.blocks = nn.ModuleList(_conv_block(widths[i], widths[i + 1]) for i in range(len(cfg.widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            features.append(x)
        return features  # finest first, bottleneck last


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018, Fig 2).

    ``x``: skip features at resolution r; ``g``: gating features at r / 2. Returns the gated
    skip features and the attention coefficients alpha in [0, 1] at resolution r.
    """

    def __init__(self, c_x: int, c_g: int, c_inter: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(c_x, c_inter, 2, stride=2, bias=False)  # to the gating grid
        self.phi_g = nn.Conv2d(c_g, c_inter, 1, bias=True)
        self.psi = nn.Conv2d(c_inter, 1, 1, bias=True)
        self.out = nn.Sequential(nn.Conv2d(c_x, c_x, 1, bias=False), nn.BatchNorm2d(c_x))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.relu(self.theta_x(x) + self.phi_g(g))
        alpha = torch.sigmoid(self.psi(q))
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(alpha * x), alpha


class UpStep(nn.Module):
    def __init__(self, c_coarse: int, c_skip: int) -> None:
        super().__init__()
        self.gate = AttentionGate(c_skip, c_coarse, max(1, c_skip // 2))
        self.up = nn.ConvTranspose2d(c_coarse, c_skip, 2, stride=2)
        self.block = _conv_block(2 * c_skip, c_skip)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gated, alpha = self.gate(skip, coarse)
        return self.block(torch.cat([gated, self.up(coarse)], dim=1)), alpha


class Decoder(nn.Module):
    """Up-sampling path with an attention gate on every skip connection, and the 1x1 head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.widths
        # steps[0] joins the bottleneck with the coarsest skip; the last one the finest.
        self.steps = nn.ModuleList(UpStep(w[i + 1], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = features[-1]
        alphas = []
        for step, skip in zip(self.steps, reversed(features[:-1])):
            x, alpha = step(x, skip)
            alphas.append(alpha)
        return self.head(x), alphas


class AttentionUNet2p5D(nn.Module):
    def __init__(self, cfg: ModelConfig | dict | None = None) -> None:
        super().__init__()
        self.config = ModelConfig.from_any(cfg)
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.encoder_frozen = False

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """``x``: (B, 40, H, W) or (B, 5, 8, H, W), H and W multiples of 2 ** depth.

        Returns logits (B, 1, H, W); with ``return_attention`` also the attention maps,
        coarsest gate first, each (B, 1, h, w) at its skip connection's resolution.
        """
        if x.dim() == 5:
            x = x.flatten(1, 2)
        m = self.config.size_multiple
        if x.shape[1] != self.config.in_channels or x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(
                f"input of shape {tuple(x.shape)}: expected (B, {self.config.in_channels}, H, W) "
                f"with H and W multiples of {m}"
            )
        logits, alphas = self.decoder(self.encoder(x))
        return (logits, alphas) if return_attention else logits

    def train(self, mode: bool = True) -> "AttentionUNet2p5D":
        super().train(mode)
        if self.encoder_frozen:
            # A frozen encoder keeps its batch-norm statistics: never let it back into train mode.
            self.encoder.eval()
        return self


def build_model(cfg: ModelConfig | dict | None = None) -> AttentionUNet2p5D:
    return AttentionUNet2p5D(cfg)


def freeze_encoder(model: AttentionUNet2p5D) -> AttentionUNet2p5D:
    """Freeze the encoder: no gradients, batch-norm layers in eval mode for good (in place)."""
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    model.encoder_frozen = True
    model.encoder.eval()
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --- checkpoints -----------------------------------------------------------------------


def architecture_record(cfg: ModelConfig) -> dict:
    return {"name": ARCHITECTURE, "format": CHECKPOINT_FORMAT, **cfg.to_dict()}


def read_checkpoint(path: str | Path, *, what: str = "model checkpoint", fix: str | None = None) -> dict:
    """Load a tissuefate checkpoint (CPU tensors) and check it names our architecture."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"the {what} is missing", path=path, fix=fix or "run the training job that writes it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise InputError(
            f"the {what} cannot be read ({type(err).__name__}: {err})",
            path=path,
            fix="delete it and rerun the training job that writes it",
        ) from None
    arch = ckpt.get("architecture") if isinstance(ckpt, dict) else None
    if not isinstance(arch, dict) or arch.get("name") != ARCHITECTURE or "model" not in ckpt:
        raise InputError(
            f"the {what} is not a tissuefate {ARCHITECTURE} checkpoint",
            path=path,
            fix="point to a model.pt written by tissuefate's training, or delete it and retrain",
        )
    return ckpt


def config_from_checkpoint(ckpt: dict) -> ModelConfig:
    return ModelConfig.from_any(ckpt["architecture"])


def check_architecture(ckpt: dict, expected: ModelConfig, path: str | Path) -> None:
    """Refuse a checkpoint whose architecture differs from ``expected``."""
    found = config_from_checkpoint(ckpt)
    if found != expected:
        raise InputError(
            f"the checkpoint is a model of another architecture ({found.to_dict()}, expected {expected.to_dict()})",
            path=path,
            fix="retrain the pretrained model with the current model: settings, or set model: to the checkpoint's",
        )


def load_model(path: str | Path, expected: ModelConfig | dict | None = None, *, what: str = "model") -> AttentionUNet2p5D:
    """Build the model recorded in a checkpoint and load its weights (eval mode, CPU)."""
    ckpt = read_checkpoint(path, what=what)
    cfg = config_from_checkpoint(ckpt)
    if expected is not None:
        check_architecture(ckpt, ModelConfig.from_any(expected), path)
    model = AttentionUNet2p5D(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise InputError(
            f"the {what}'s weights do not fit its recorded architecture ({str(err).splitlines()[0]})",
            path=path,
            fix="delete it and rerun the training job that writes it",
        ) from None
    return model.eval()


# --- inference-only form ---------------------------------------------------------------


def folded_for_inference(model: AttentionUNet2p5D, *, inplace: bool = False) -> AttentionUNet2p5D:
    """An inference-only copy of ``model``: every batch-norm folded into the convolution before
    it (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and the weights in channels-last layout.

    The same function of the input, evaluated in another order: outputs differ from the eval-mode
    model's in the last float bits (about 1e-7 for probabilities), and on 2 CPU cores it runs in
    about 0.7 of the time (BENCHMARKS.md, "One new patient"). The model given is left as it is, unless ``inplace``."""
    folded = (model if inplace else copy.deepcopy(model)).eval()
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded.to(memory_format=torch.channels_last)
