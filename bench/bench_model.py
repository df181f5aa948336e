"""Speed of the attention-gated 2.5D U-Net at the 2 mm MNI grid (99 x 117 x 95 voxels).

Prints training slices per second (forward + backward + Adam step, batch of centre slices
with their 5-slice context, dataset resident on the device) and inference seconds per
patient (every axial slice with coverage, in-memory volume: no NIfTI reading or writing).

    python bench/bench_model.py                      # CPU, 2 threads
    python bench/bench_model.py --device cuda --batch-size 128 --steps 200   # bf16 autocast
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from tissuefate.dataset import ParticipantVolumes, SliceDataset
from tissuefate.model import AttentionUNet2p5D, ModelConfig, count_parameters
from tissuefate.prediction import predict_volume
from tissuefate.training import DEFAULTS, masked_loss

GRID_2MM = (99, 117, 95)  # x, y, z of MNI152 at 2 mm


def synthetic_patient(label: str, seed: int, shape=GRID_2MM) -> ParticipantVolumes:
    rng = np.random.default_rng(seed)
    x, y, z = shape
    coverage = np.zeros((z, x, y), bool)
    coverage[8:-8, 10:-10, 10:-10] = True  # axial slices outside the perfusion slab have none
    inputs = rng.normal(1.0, 0.2, (z, 8, x, y)).astype(np.float32) * coverage[:, None]
    target = np.zeros((z, x, y), bool)
    target[30:50, 20:45, 30:60] = True
    return ParticipantVolumes(label, inputs, coverage, target, np.eye(4), (2, 0, 1), -2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (a shared machine is noisy: best and median)")
    ap.add_argument("--patients", type=int, default=2, help="patients resident in the training set")
    ap.add_argument("--widths", type=int, nargs="+", default=list(ModelConfig().widths))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = ModelConfig(widths=tuple(args.widths))
    torch.manual_seed(0)
    model = AttentionUNet2p5D(cfg).to(device)
    patients = [synthetic_patient(f"{i}", i) for i in range(args.patients)]
    data = SliceDataset(patients, cfg.n_slices, cfg.size_multiple, device=device)
    H, W = data.inputs.shape[-2:]
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {device}{' (' + torch.cuda.get_device_name(device) + ', bf16 autocast)' if device.type == 'cuda' else ''}, "
          f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}, load average: {load:.1f}, torch {torch.__version__}")
    print(f"model: widths {list(cfg.widths)}, {count_parameters(model):,} parameters; "
          f"grid {GRID_2MM} -> slices padded to {H} x {W}")

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()

    def step() -> None:
        idx = data.sample_slices.cpu()[torch.randint(len(data.sample_slices), (args.batch_size,), generator=gen)]
        x, cov, y = data.batch(idx, torch.rand(args.batch_size, generator=gen) < 0.5)
        optimizer.zero_grad(set_to_none=True)
        with amp:
            logits = model(x)
        masked_loss(logits, y, cov).backward()
        optimizer.step()

    for _ in range(3):
        step()
    rates = []
    for _ in range(args.repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync(device)
        rates.append(args.steps * args.batch_size / (time.perf_counter() - t0))
    print(f"training: {max(rates):.1f} slices/s best, {np.median(rates):.1f} median of {args.repeats} x {args.steps} "
          f"steps (batch {args.batch_size})")

    patient = patients[0]
    n_slices = int(patient.coverage.reshape(patient.coverage.shape[0], -1).any(1).sum())
    predict_volume(model, patient, batch_size=16, device=device)  # warm-up
    sync(device)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        predict_volume(model, patient, batch_size=16, device=device)
        sync(device)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"inference: {best:.2f} s per patient best, {np.median(times):.2f} s median of {args.repeats} "
          f"({n_slices} axial slices with coverage, {n_slices / best:.1f} slices/s best)")


if __name__ == "__main__":
    main()
