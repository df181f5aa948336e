"""One DSC series in, perfusion maps out: ``compute_perfusion_maps``.

Writes, into ``out_dir``, with the input's BIDS entities (``sub-<l>_ses-<s>`` from
``sub-<l>_ses-<s>_dsc.nii.gz``) as prefix::

    <prefix>_{Tmax,MTT,CBF,CBV,TTP}.nii.gz   + .json ("Units", method, sources)
    <prefix>_desc-brain_mask.nii.gz          voxels where maps were computed
    <prefix>_desc-aif_timeseries.tsv         the AIF curve (time_s, delta_r2star_per_s)
    <prefix>_desc-aif_timeseries.json        its columns and the AIF voxel locations
    <prefix>_desc-perfusion_summary.json     frames dropped, bolus arrival, TR, TE, settings
    <prefix>_desc-perfusion_qc.png           the QC figure

Everything is computed and checked before the first file is written; the files are written
into a hidden folder beside ``out_dir`` and moved into place only when all are complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.config import section_defaults
from tissuefate.errors import InputError
from tissuefate.io.bids import read_sidecar
from tissuefate.perfusion import aif as aif_mod
from tissuefate.perfusion import signal as sig
from tissuefate.perfusion.deconvolution import METHODS, deconvolve
from tissuefate.perfusion.maps import MAP_UNITS, perfusion_maps

# The stage's settings and their defaults live in the config schema (section "perfusion");
# maps_source chooses what feeds the study, not how maps are computed.
DEFAULTS = {key: value for key, value in section_defaults("perfusion").items() if key != "maps_source"}

SOURCES = {
    "osvd": "Wu O et al. MRM 2003;50:164-174 (block-circulant SVD, oscillation index)",
    "svd": "Ostergaard L et al. MRM 1996;36:715-725 (truncated SVD)",
    "tikhonov": "Calamante F et al. MRM 2003;50:1237-1247 (Tikhonov regularisation)",
}
# A clipped (saturated) series: more than this fraction of head samples at the series' maximum.
MAX_CLIPPED_FRACTION = 0.002


def output_prefix(dsc_path: str | Path) -> str:
    name = Path(dsc_path).name
    for ext in (".nii.gz", ".nii"):
        name = name.removesuffix(ext)
    return name.removesuffix("_dsc")


def output_paths(out_dir: str | Path, prefix: str) -> dict[str, Path]:
    """Every file ``compute_perfusion_maps`` writes, by key (maps by their name)."""
    out = Path(out_dir)
    paths = {name: out / f"{prefix}_{name}.nii.gz" for name in MAP_UNITS}
    paths.update({f"{name}_json": out / f"{prefix}_{name}.json" for name in MAP_UNITS})
    paths["brain_mask"] = out / f"{prefix}_desc-brain_mask.nii.gz"
    paths["aif_tsv"] = out / f"{prefix}_desc-aif_timeseries.tsv"
    paths["aif_json"] = out / f"{prefix}_desc-aif_timeseries.json"
    paths["summary"] = out / f"{prefix}_desc-perfusion_summary.json"
    paths["qc"] = out / f"{prefix}_desc-perfusion_qc.png"
    return paths


def _load_series(path: Path, participant: str | None) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise InputError("the DSC series is missing", participant=participant, path=path,
                         fix="give the 4D DSC NIfTI (BIDS: sub-<l>/ses-<s>/perf/sub-<l>_ses-<s>_dsc.nii.gz)")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(f"the DSC series cannot be read as NIfTI ({type(err).__name__}: {err})",
                         participant=participant, path=path,
                         fix="re-export the series from the scanner or dcm2niix") from None
    if data.ndim != 4:
        raise InputError(f"the DSC series has shape {data.shape}: a 4D series (x, y, z, time) is expected",
                         participant=participant, path=path,
                         fix="give the whole dynamic series, not one volume (dcm2niix writes it as one 4D file)")
    if not np.isfinite(data).all():
        raise InputError("the DSC series holds NaN or infinite values", participant=participant, path=path,
                         fix="re-export the series; raw DSC signal is finite")
    return data, img.affine


def _timing(path: Path, participant: str | None, echo_time_s: float | None) -> tuple[float, float]:
    sidecar = read_sidecar(path, participant, required=True)
    side = str(path).removesuffix(".gz").removesuffix(".nii") + ".json"
    tr = sidecar.get("RepetitionTime")
    te = sidecar.get("EchoTime", echo_time_s)
    if te is None:
        raise InputError("the sidecar has no EchoTime", participant=participant, path=side,
                         fix='add "EchoTime" in seconds (e.g. 0.030) from the DICOM header (dcm2niix writes it)')
    if tr is None:
        raise InputError("the sidecar has no RepetitionTime", participant=participant, path=side,
                         fix='add "RepetitionTime" (the frame interval) in seconds from the DICOM header')
    try:
        tr, te = float(tr), float(te)
    except (TypeError, ValueError):
        raise InputError("RepetitionTime or EchoTime is not a number", participant=participant, path=side,
                         fix="write both in seconds as numbers") from None
    if not 0 < te < 0.5:
        raise InputError(f"EchoTime {te:g} is not in seconds (0 < TE < 0.5 s expected)", participant=participant,
                         path=side, fix="write EchoTime in seconds, as BIDS asks (30 ms -> 0.030)")
    if not 0.1 <= tr <= 10:
        raise InputError(f"RepetitionTime {tr:g} is not a DSC frame interval in seconds (0.1-10 s)",
                         participant=participant, path=side, fix="write RepetitionTime in seconds, as BIDS asks")
    return tr, te


def compute_perfusion_maps(
    dsc_path: str | Path,
    out_dir: str | Path,
    *,
    settings: dict | None = None,
    participant: str | None = None,
    aif_mask_path: str | Path | None = None,
    echo_time_s: float | None = None,
    qc: bool = True,
) -> dict:
    """Perfusion maps of one 4D DSC series (with its JSON sidecar) into ``out_dir``.

    ``settings``: the config's ``perfusion`` section (DEFAULTS fill what is missing).
    ``aif_mask_path``: a 3D NIfTI on the series' grid whose non-zero voxels are the AIF
    (skips the automatic selection). ``echo_time_s`` is used only when the sidecar has none.
    Returns the summary (also written as JSON).
    """
    dsc_path = Path(dsc_path)
    opts = {**DEFAULTS, **(settings or {})}
    if opts["method"] not in METHODS:
        raise ValueError(f"perfusion.method must be one of {METHODS}")
    data, affine = _load_series(dsc_path, participant)
    tr, te = _timing(dsc_path, participant, echo_time_s)

    def fail(err: sig.SignalError | aif_mod.AIFError):
        return InputError(err.problem, participant=participant, path=dsc_path, fix=err.fix)

    n_frames = data.shape[3]
    if n_frames < sig.MIN_FRAMES + 1:
        raise InputError(f"the DSC series has {n_frames} frames, too short for a bolus passage "
                         f"(at least {sig.MIN_FRAMES + 1} expected)", participant=participant, path=dsc_path,
                         fix="give the whole dynamic series (usually 40-80 frames)")
    motion = None
    if opts["motion_correction"]:
        from tissuefate.perfusion.motion import correct_motion

        data, motion = correct_motion(data, np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    head = sig.head_mask(data.mean(axis=3))
    if head.sum() < 50:
        raise InputError("the DSC series holds no head (fewer than 50 voxels above background)",
                         participant=participant, path=dsc_path, fix="check that the file is a DSC series")
    # From here on, the head's voxels as rows of a (voxels, time) matrix.
    samples = data[head]
    vmax = float(data.max())
    clipped = float(np.mean(samples >= vmax)) if vmax > 0 else 0.0
    if clipped > MAX_CLIPPED_FRACTION:
        raise InputError(f"the DSC signal is saturated: {100 * clipped:.1f} % of head samples sit at the maximum "
                         f"value {vmax:g}", participant=participant, path=dsc_path,
                         fix="reconstruct the series without clipping (lower the receiver gain or rescale)")
    curve = samples.mean(axis=0, dtype=np.float64)
    if opts["nonsteady_frames"] == "auto":
        dropped = sig.nonsteady_frames(curve)
    else:
        dropped = int(opts["nonsteady_frames"])
    samples, curve = samples[:, dropped:], curve[dropped:]
    if samples.shape[1] < sig.MIN_FRAMES:
        raise InputError(f"the DSC series keeps {samples.shape[1]} frames after the non-steady-state ones, "
                         f"too short (at least {sig.MIN_FRAMES})", participant=participant, path=dsc_path,
                         fix="give the whole dynamic series (usually 40-80 frames)")
    try:
        bolus = sig.bolus_arrival(curve)
    except sig.SignalError as err:
        raise fail(err) from None
    baseline = slice(0, max(sig.MIN_BASELINE_FRAMES, bolus.arrival - 1))
    s0 = samples[:, baseline].mean(axis=1)
    dr2s = sig.delta_r2star(samples, s0, te)
    times = np.arange(samples.shape[1]) * tr

    # CSF (bright, long T2*) with no contrast passage: excluded from maps and AIF search.
    noise = dr2s[:, baseline].std(axis=1)
    csf_rows = (s0 > 1.5 * np.median(s0)) & (dr2s.max(axis=1) < 3.0 * np.maximum(noise, 1e-12))
    csf = np.zeros_like(head)
    csf[head] = csf_rows
    brain = head & ~csf
    curves = dr2s[~csf_rows]  # (voxels, time) of the brain
    tissue_curve = curves.mean(axis=0, dtype=np.float64)
    if aif_mask_path is not None:
        found = _user_aif(aif_mask_path, head.shape, data[..., dropped:], baseline, te, participant)
    else:
        try:
            found = aif_mod.select_aif(curves, np.argwhere(brain), times, tissue_curve=tissue_curve,
                                       arrival_s=times[bolus.arrival])
        except aif_mod.AIFError as err:
            raise fail(err) from None

    tissue = curves.T  # (T, V)
    residue = deconvolve(tissue, found.curve, tr, opts["method"], oscillation_index_max=opts["oscillation_index"],
                         svd_threshold=opts["svd_threshold"], tikhonov_lambda=opts["tikhonov_lambda"])
    values = perfusion_maps(residue, tissue, found.curve, tr, circular=opts["method"] != "svd",
                            kh=opts["kh"], rho_g_per_ml=opts["rho_g_per_ml"])
    maps = {}
    for name, v in values.items():
        volume = np.zeros(head.shape, dtype=np.float32)
        volume[brain] = v
        maps[name] = volume

    prefix = output_prefix(dsc_path)
    summary = {
        "Participant": participant,
        "Source": str(dsc_path),
        "RepetitionTime": tr,
        "EchoTime": te,
        "FramesIn": int(n_frames),
        "NonSteadyStateFramesDropped": int(dropped),
        "BolusArrivalFrame": int(bolus.arrival) + int(dropped),
        "BaselineFrames": [int(dropped), int(baseline.stop) + int(dropped)],
        "BolusSignalDrop": round(float(bolus.depth), 4),
        "BrainVoxels": int(brain.sum()),
        "CSFVoxelsExcluded": int(csf.sum()),
        "AIFMethod": found.method,
        "AIFVoxels": int(len(found.voxels)),
        "AIFPeakOverTissuePeak": round(float(found.curve.max() / tissue_curve.max()), 3),
        "Settings": opts,
    }
    if motion is not None:
        shifts = [float(np.linalg.norm(m["translation_mm"])) for m in motion]
        angles = [float(np.max(np.abs(m["rotation_deg"]))) for m in motion]
        summary["MotionCorrection"] = {"method": "rigid, Mattes MI, to the median frame (antspyx)",
                                       "max_translation_mm": round(max(shifts), 3),
                                       "max_rotation_deg": round(max(angles), 3), "frames": motion}
    _write_outputs(Path(out_dir), prefix, affine, maps, brain, found, times, summary, opts,
                   qc_args=dict(times_s=times, aif=found.curve, tissue_curves=curves, brain=brain,
                                baseline_image=_volume(s0, head), aif_voxels=found.voxels, maps=maps) if qc else None)
    return summary


def _volume(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    volume = np.zeros(mask.shape, dtype=np.float32)
    volume[mask] = values
    return volume


def _user_aif(path, shape, data, baseline, te, participant) -> aif_mod.AIF:
    """The AIF from the user's mask (its voxels may lie outside the brain mask)."""
    mask = np.asarray(nib.load(str(path)).dataobj) > 0
    if mask.shape != shape:
        raise InputError(f"the AIF mask has shape {mask.shape}, the series {shape}", participant=participant,
                         path=path, fix="draw the AIF mask on the DSC series' grid")
    samples = data[mask]
    try:
        return aif_mod.user_aif(sig.delta_r2star(samples, samples[:, baseline].mean(axis=1), te), np.argwhere(mask))
    except aif_mod.AIFError as err:
        raise InputError(err.problem, participant=participant, path=path, fix=err.fix) from None


def _write_outputs(out: Path, prefix, affine, maps, brain, found, times, summary, opts, qc_args) -> None:
    from tissuefate.io.nifti import save_image
    from tissuefate.perfusion.qc import qc_figure

    final = output_paths(out, prefix)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.perfusion.", dir=out.parent))
    try:
        staged = output_paths(tmp, prefix)
        for name, volume in maps.items():
            save_image(volume, affine, staged[name])
            sidecar = {"Units": MAP_UNITS[name], "Description": _DESCRIPTIONS[name],
                       "Method": opts["method"], "Sources": [SOURCES[opts["method"]]],
                       "HematocritCorrection": opts["kh"], "TissueDensity": opts["rho_g_per_ml"]}
            staged[f"{name}_json"].write_text(json.dumps(sidecar, indent=2) + "\n")
        save_image(brain.astype(np.uint8), affine, staged["brain_mask"], dtype=np.uint8)
        lines = ["time_s\tdelta_r2star_per_s"] + [f"{t:.4f}\t{v:.6g}" for t, v in zip(times, found.curve)]
        staged["aif_tsv"].write_text("\n".join(lines) + "\n")
        aif_meta = {
            "Description": "arterial input function: mean Delta R2* of the AIF voxels",
            "Columns": ["time_s", "delta_r2star_per_s"],
            "time_s": {"Units": "s", "Description": "time from the first steady-state frame"},
            "delta_r2star_per_s": {"Units": "1/s", "Description": "-ln(S/S0)/TE"},
            "Method": found.method,
            "Sources": ["Mouridsen K et al. MRM 2006;55:524-531"] if found.method == "automatic" else [],
            "VoxelIndices": found.voxels.astype(int).tolist(),
        }
        staged["aif_json"].write_text(json.dumps(aif_meta, indent=1) + "\n")
        staged["summary"].write_text(json.dumps(summary, indent=2) + "\n")
        if qc_args is not None:
            qc_figure(staged["qc"], title=prefix, **qc_args)
        out.mkdir(parents=True, exist_ok=True)
        for key, path in staged.items():
            if path.exists():
                os.replace(path, final[key])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_DESCRIPTIONS = {
    "CBF": "cerebral blood flow: kH/rho x max of the deconvolved residue",
    "CBV": "cerebral blood volume: kH/rho x integral of C over integral of the AIF",
    "MTT": "mean transit time: CBV/CBF",
    "Tmax": "time to the maximum of the deconvolved residue (sub-frame parabolic), from the AIF",
    "TTP": "time to the peak of the tissue Delta R2* curve, from the first steady-state frame",
}
