"""The one-page report of `tissuefate predict`: overlays on the patient's own DWI, the volumes,
the trial criteria and, when needed, a warning banner (PNG, and HTML embedding the PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.io.atomic import atomic_path

TAR_RGB = (1.0, 0.8, 0.0)
CORE_RGB = (1.0, 0.0, 1.0)


def _show(slice_xy: np.ndarray) -> np.ndarray:
    """An axial RAS slice as radiologists view it: anterior up, the patient's left on the right."""
    return np.rot90(slice_xy)[:, ::-1]


def _axial(img: nib.Nifti1Image) -> tuple[np.ndarray, int]:
    """The volume reoriented to RAS (so slices display the usual way) and its axial axis."""
    ras = nib.as_closest_canonical(img)
    return np.asarray(ras.dataobj, dtype=np.float32), 2


def _ras(mask: np.ndarray | None, img: nib.Nifti1Image) -> np.ndarray | None:
    if mask is None:
        return None
    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(mask.astype(np.uint8), img.affine)).dataobj) > 0


def choose_slices(masks: list[np.ndarray | None], n_z: int, n: int = 4) -> list[int]:
    """``n`` axial slices through the lesion (largest union area first, spread out), else the middle."""
    union = np.zeros(n_z)
    for m in masks:
        if m is not None:
            union += m.sum(axis=(0, 1))
    if union.sum() == 0:
        return sorted({int(round(x)) for x in np.linspace(0.3 * (n_z - 1), 0.7 * (n_z - 1), n)})
    lit = np.flatnonzero(union > 0)
    return sorted({int(lit[int(round(i))]) for i in np.linspace(0, len(lit) - 1, min(n, len(lit)))})


def _ratio(value) -> str:
    return "undefined (no core, no tissue at risk)" if value is None else str(value)


def _lines(summary: dict) -> list[str]:
    out = []
    m = summary.get("model")
    if m:
        out += [
            f"Model (ensemble of {len(summary['bundle']['folds'])}; interval = range of the fold models):",
            f"  tissue at risk {m['tissue_at_risk_ml']} mL [{m['tissue_at_risk_ml_interval'][0]}-{m['tissue_at_risk_ml_interval'][1]}]",
            f"  core {m['core_ml']} mL [{m['core_ml_interval'][0]}-{m['core_ml_interval'][1]}]",
            f"  mismatch {m['mismatch_ml']} mL [{m['mismatch_ml_interval'][0]}-{m['mismatch_ml_interval'][1]}], ratio {_ratio(m['mismatch_ratio'])}",
        ]
    t = summary["thresholding"]
    if t.get("tissue_at_risk_ml") is not None:
        out += ["Thresholding (Tmax > 6 s, ADC < 620):",
                f"  tissue at risk {t['tissue_at_risk_ml']} mL, core {t['core_ml']} mL, mismatch {t['mismatch_ml']} mL, "
                f"ratio {_ratio(t['mismatch_ratio'])}, Tmax > 10 s {t['tmax10s_ml']} mL"]
    elif t.get("core_ml") is not None:
        out += [f"Core estimate (ADC < 620 thresholding): {t['core_ml']} mL"]
    for trial, by in summary["criteria"].items():
        for source, res in by.items():
            out.append(f"{trial} ({source}): {res['verdict'].upper()}")
    for line in summary.get("cannot_compute", []):
        out.append(f"cannot compute: {line}")
    return out


def write_report(summary: dict, dwi: nib.Nifti1Image, model_masks: dict, threshold_masks: dict, png: Path,
                 html_path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    data, _ = _axial(dwi)
    tar = _ras(model_masks.get("tissue_at_risk", threshold_masks.get("tissue_at_risk")), dwi)
    core = _ras(model_masks.get("ischemic_core", threshold_masks.get("ischemic_core")), dwi)
    slices = choose_slices([tar, core, *(_ras(m, dwi) for m in threshold_masks.values())], data.shape[2])
    fig = Figure(figsize=(11, 8.5))
    warnings = summary.get("warnings", [])
    top = 0.86 if warnings else 0.93
    fig.text(0.02, 0.97, f"tissuefate predict: {summary['participant_id']}   ({summary['notice']})", fontsize=11,
             weight="bold", va="top")
    if warnings:
        fig.text(0.02, 0.935, "WARNING: " + " | ".join(warnings), fontsize=9, color="white", va="top", wrap=True,
                 bbox=dict(facecolor="#c00000", edgecolor="none", pad=4))
    vmax = float(np.percentile(data[data > 0], 99)) if (data > 0).any() else 1.0
    width = 0.96 / max(len(slices), 1)
    for i, z in enumerate(slices):
        ax = fig.add_axes([0.02 + i * width, 0.45, width - 0.01, top - 0.47])
        ax.imshow(_show(data[:, :, z]), cmap="gray", vmin=0, vmax=vmax)
        for mask, colour in ((tar, TAR_RGB), (core, CORE_RGB)):
            if mask is not None and mask[:, :, z].any():
                ax.contour(_show(mask[:, :, z]).astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
        ax.set_title(f"axial {z}", fontsize=9)
        ax.axis("off")
    fig.legend(handles=[Line2D([], [], color=TAR_RGB, label="tissue at risk"),
                        Line2D([], [], color=CORE_RGB, label="ischemic core")], loc="center", ncol=2,
               bbox_to_anchor=(0.5, 0.43), frameon=False)
    import textwrap

    wrapped = [w for line in _lines(summary) for w in textwrap.wrap(line, 125, subsequent_indent="    ")]
    fig.text(0.02, 0.40, "\n".join(wrapped), fontsize=9, family="monospace", va="top")
    fig.text(0.02, 0.01, "The patient's left on the right of each image (radiological view). Criteria sources: "
             "docs/predict.md.", fontsize=7)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    encoded = base64.b64encode(Path(png).read_bytes()).decode()
    banner = "".join(f'<p style="background:#c00000;color:white;padding:6px">WARNING: {html.escape(w)}</p>'
                     for w in warnings)
    rows = []
    for trial, by in summary["criteria"].items():
        for source, res in by.items():
            checks = "; ".join(f"{c['criterion']}: {c['value']} ({'yes' if c['met'] else 'no' if c['met'] is False else '?'})"
                               for c in res["checks"])
            rows.append(f"<tr><td>{html.escape(trial)}</td><td>{source}</td><td><b>{res['verdict']}</b></td>"
                        f"<td>{html.escape(checks)}</td></tr>")
    text = "<br>".join(html.escape(line) for line in _lines(summary))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tissuefate predict {summary['participant_id']}</title></head>
<body style="font-family:sans-serif;max-width:1100px">
<h2>tissuefate predict: {summary['participant_id']}</h2>
<p><b>{html.escape(summary['notice'])}</b></p>
{banner}
<img src="data:image/png;base64,{encoded}" style="width:100%">
<p style="font-family:monospace">{text}</p>
<table border="1" cellpadding="4" style="border-collapse:collapse"><tr><th>trial</th><th>volumes from</th><th>verdict</th><th>criteria</th></tr>
{''.join(rows)}</table>
<p>Sources: {'; '.join(html.escape(f'{k}: {v}') for k, v in summary['criteria_sources'].items())}</p>
</body></html>
"""
    with atomic_path(html_path) as tmp:
        tmp.write_text(page)
