"""Seconds per series for ``compute_perfusion_maps`` (the whole job: reading, masks, AIF,
oSVD deconvolution of every brain voxel at once, maps, NIfTI/JSON/TSV writes and the QC
figure) on a synthetic 128 x 128 x 20 x 60 DSC series, one core.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_perfusion.py [--repeats 3] [--method osvd]

The series: a head of 128 x 128 x 20 with grey-matter-like tissue (one hemisphere delayed
by 4 s), a few artery voxels, gamma-variate AIF, Rician-free Gaussian noise; TR 1.5 s,
TE 30 ms. Output under bench/out/perfusion (git-ignored). Prints wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def synthetic_series(folder: Path, shape=(128, 128, 20), frames=60, tr=1.5, te=0.03) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(frames) * tr
    aif = np.where(t > 15, ((t - 15) / 3) ** 3 * np.exp(-(t - 15) / 1.5), 0.0) * 600.0
    x, y = np.mgrid[: shape[0], : shape[1]]
    head = ((x - 63.5) / 55) ** 2 + ((y - 63.5) / 62) ** 2 < 1
    curves = {}
    for delay in (0.0, 4.0):
        r = np.exp(-np.clip(t - delay, 0, None) / 4.0) * (t >= delay)
        curves[delay] = np.convolve(aif, r)[:frames] * tr * 0.01
    dr2s = np.zeros(shape[:2] + (frames,), dtype=np.float32)
    dr2s[head & (x < 64)] = curves[4.0]
    dr2s[head & (x >= 64)] = curves[0.0]
    dr2s[60:62, 40:42] = aif
    s0 = np.where(head, 1000.0, 20.0).astype(np.float32)
    slab = s0[..., None] * np.exp(-te * dr2s)
    data = np.repeat(slab[:, :, None, :], shape[2], axis=2)
    data = data + rng.normal(0, 5, data.shape).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sub-bench_ses-baseline_dsc.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.8, 1.8, 5.0, 1.0])), str(path))
    (folder / "sub-bench_ses-baseline_dsc.json").write_text(json.dumps({"RepetitionTime": tr, "EchoTime": te}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", default="osvd", choices=["osvd", "svd", "tikhonov"])
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "perfusion"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tissuefate.perfusion import compute_perfusion_maps

    out = Path(args.out)
    series = synthetic_series(out / "in")
    walls, cpus = [], []
    for _ in range(args.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        summary = compute_perfusion_maps(series, out / "maps", settings={"method": args.method})
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        print(f"wall {walls[-1]:.2f} s, CPU {cpus[-1]:.2f} s, brain voxels {summary['BrainVoxels']}", flush=True)
    print(f"median: wall {np.median(walls):.2f} s, CPU {np.median(cpus):.2f} s per 128x128x20x60 series ({args.method})")


if __name__ == "__main__":
    main()
