"""A model bundle: everything `tissuefate predict` needs to apply the study's models to a new
patient, checked on load.

    bundle/
      manifest.json     format, tissuefate and torch versions, SHA-256 of every other file
      bundle.json       the models per target, preprocessing settings, template grid,
                        probability threshold, training domain, software versions
      config.yaml       the study's config
      model_card.md     training cohort, cross-validated metrics (median, IQR), intended use
      models/{target}/fold-{k}.pt
      template/         the MNI template files preprocessing registers to (2, 3, 4 mm and
                        the output grid), so a prediction needs nothing else

Deployed models (docs/predict.md): the cross-validation's fold models of one approach, as
an ensemble (mean probability; the spread of the members gives the intervals). They are the
models whose performance the study measured; a model retrained on every patient would have
no held-out measurement.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_dir

BUNDLE_FORMAT = "tissuefate-bundle"
BUNDLE_FORMAT_VERSION = 1
# The paper's proposed method: pretrained on every patient, fine-tuned per reperfusion group.
DEPLOYED_APPROACH = "pretraining"
TARGETS = ("tissue_at_risk", "ischemic_core")
REGISTRATION_RESOLUTIONS_MM = (2, 3, 4)  # what registration_resolution("auto") can choose
_FIX_REBUILD = "rebuild the bundle with the workflow (snakemake ... results/bundle) or copy it again from its source"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def software_versions() -> dict:
    import importlib.metadata as md

    import tissuefate

    out = {"python": platform.python_version(), "tissuefate": tissuefate.__version__}
    for name in ("torch", "numpy", "nibabel", "antspyx", "nipype", "scipy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


# ------------------------------------------------------------------------------ writing


def _native_voxel_mm(bids_root: Path, label: str) -> list[float] | None:
    import nibabel as nib

    from tissuefate.io.bids import ParticipantFiles

    path = ParticipantFiles(bids_root, label).baseline("b1000")
    if not path.exists():
        return None
    return [round(float(z), 3) for z in nib.load(str(path)).header.get_zooms()[:3]]


def training_domain(results: str | Path, labels: list[str], bids_root: str | Path | None = None) -> dict:
    """Ranges seen in the training cohort: native DWI voxel size, coverage of the brain and the
    parenchymal means of the maps in physical units (a patient far outside them is flagged)."""
    from tissuefate.io import derivatives

    voxels, coverage, means = [], [], {}
    for label in labels:
        summary = json.loads(derivatives.preproc_summary(results, label).read_text())
        coverage.append(float(summary["coverage_fraction_of_brain"]))
        for name, value in summary["parenchymal_mean"].items():
            means.setdefault(name, []).append(float(value))
        if bids_root is not None:
            v = _native_voxel_mm(Path(bids_root), label)
            if v is not None:
                voxels.append(v)
    rng = lambda values: [round(float(np.min(values)), 4), round(float(np.max(values)), 4)]  # noqa: E731
    return {
        "n_patients": len(labels),
        "native_voxel_mm": rng(np.asarray(voxels).ravel()) if voxels else None,
        "coverage_fraction_of_brain": rng(coverage),
        "parenchymal_mean": {name: rng(v) for name, v in means.items()},
    }


def cross_validated_metrics(summary_tsv: str | Path, approaches: tuple[str, ...]) -> pd.DataFrame:
    table = pd.read_csv(summary_tsv, sep="\t")
    return table[table["approach"].isin(approaches)].reset_index(drop=True)


def model_card(meta: dict, metrics: pd.DataFrame, cohort: dict) -> str:
    """The model card (Markdown): what the models are, what they were measured on, and what not to do."""
    lines = [
        "# Model card: tissuefate stroke tissue-fate ensemble",
        "",
        "**Not for clinical use without local validation.** These models were trained and",
        "cross-validated on the cohort described below only; they are research software, not a",
        "medical device.",
        "",
        "## Models",
        "",
        f"- Approach: `{meta['approach']}` (Yu et al., AJNR 2021: attention-gated 2.5D U-Net, pretrained on all "
        "patients, fine-tuned per reperfusion group).",
    ]
    for target, models in meta["targets"].items():
        lines.append(f"- {target}: an ensemble of {len(models['models'])} fold models (mean probability; "
                     f"mask at {meta['probability_threshold']}).")
    lines += [
        f"- Input: DWI, ADC, Tmax, MTT, CBF, CBV and the Tmax > {meta['preprocessing']['tmax_threshold_s']} s and "
        f"ADC < {meta['preprocessing']['adc_threshold_um2_per_s']} masks on the MNI grid "
        f"({meta['template']['resolution_mm']} mm).",
        "",
        "## Training cohort",
        "",
        f"- Dataset: `{cohort['dataset']}` ({'simulated' if cohort['simulated'] else 'real'} data).",
        f"- Included patients: {cohort['n_included']} of {cohort['n_reviewed']} reviewed; "
        f"reperfusion groups: {cohort['groups']}.",
        f"- Native DWI voxel size seen: {meta['training_domain']['native_voxel_mm']} mm; brain coverage "
        f"fraction: {meta['training_domain']['coverage_fraction_of_brain']}.",
        "",
        "## Cross-validated performance (test folds; median and interquartile range)",
        "",
        "| target | approach | metric | n | median | Q1 | Q3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in metrics.itertuples(index=False):
        lines.append(f"| {row.target} | {row.approach} | {row.metric} | {row.n} | {row.median:.3f} | {row.q1:.3f} | {row.q3:.3f} |")
    lines += [
        "",
        "## Intended use",
        "",
        "- Research: estimate, for one admission MRI with DWI and perfusion maps, the tissue at risk",
        "  (final infarct without reperfusion) and the ischemic core (final infarct with reperfusion),",
        "  their volumes, mismatch and the trial imaging criteria computed from them.",
        "- Not intended: treatment decisions without a validated local workflow; patients unlike the",
        "  training cohort (other sequences, resolution, perfusion software, children, haemorrhage).",
        "- The ensemble interval is the spread of the fold models, not a calibrated confidence interval.",
        "",
        "## Software",
        "",
        *[f"- {k}: {v}" for k, v in meta["software"].items()],
        "",
    ]
    return "\n".join(lines)


def write_bundle(config: dict, results: str | Path, out_dir: str | Path, *, labels: list[str],
                 cohort_tsv: str | Path, summary_tsv: str | Path, n_folds: int | None = None,
                 approach: str = DEPLOYED_APPROACH) -> Path:
    """Write the bundle of the study in ``results`` (atomically: all of it or nothing).

    ``labels``: the included patients (their preprocessing gives the training domain)."""
    from tissuefate.io import derivatives
    from tissuefate.preprocessing.template import template_files, template_paths
    from tissuefate.preprocessing.workflow import PreprocessingSettings

    results = Path(results)
    n_folds = int(n_folds or config.get("splits", {}).get("n_folds", 5))
    settings = PreprocessingSettings.from_config(config)
    threshold = float(config.get("evaluation", {}).get("probability_threshold", 0.5))
    cohort = pd.read_csv(cohort_tsv, sep="\t", keep_default_na=False)
    inc = cohort[cohort["included"].astype(str) == "True"]
    groups = inc["reperfusion_group"].value_counts().sort_index().to_dict() if "reperfusion_group" in inc else {}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        targets = {}
        for target in TARGETS:
            models = []
            for fold in range(1, n_folds + 1):
                src = derivatives.model_dir(results, approach, target, fold) / "model.pt"
                if not src.exists():
                    raise InputError("a fold model of the deployed approach is missing", path=src,
                                     fix="run the workflow's training stage first")
                dst = Path("models") / target / f"fold-{fold}.pt"
                (tmp / dst).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmp / dst)
                models.append({"fold": fold, "path": str(dst)})
            targets[target] = {"approach": approach, "models": models}
        resolutions = sorted({*REGISTRATION_RESOLUTIONS_MM, int(settings.template_resolution_mm)})
        for res in resolutions:
            tpl = template_files(res, results / "preprocessing" / "template")
            dst = template_paths(res, tmp / "template")
            for s, d in zip(tpl.all(), dst.all()):
                d.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(s, d)
        import nibabel as nib

        grid = nib.load(str(template_paths(settings.template_resolution_mm, tmp / "template").brain_mask))
        meta = {
            "approach": approach,
            "targets": targets,
            "probability_threshold": threshold,
            "preprocessing": {k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in settings.__dict__.items()},
            "template": {"space": derivatives.SPACE, "resolution_mm": settings.template_resolution_mm,
                         "shape": list(grid.shape), "affine": np.round(grid.affine, 6).tolist(),
                         "registration_resolutions_mm": resolutions, "dir": "template"},
            "training_domain": training_domain(results, labels, config.get("dataset", {}).get("bids_dir")),
            "software": software_versions(),
        }
        (tmp / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        metrics = cross_validated_metrics(summary_tsv, (approach, "thresholding"))
        cohort_info = {"dataset": str(config.get("dataset", {}).get("bids_dir")),
                       "simulated": bool(config.get("dataset", {}).get("simulate"))
                       or (Path(str(config.get("dataset", {}).get("bids_dir"))) / "derivatives" / "simulation").is_dir(),
                       "n_included": len(inc), "n_reviewed": len(cohort), "groups": groups}
        (tmp / "model_card.md").write_text(model_card(meta, metrics, cohort_info))
        files = bundle_files(tmp)
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "tissuefate_version": meta["software"]["tissuefate"],
            "torch_version": meta["software"]["torch"],
            "files": {name: sha256(tmp / name) for name in files},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


_NOT_LISTED = {"manifest.json", ".snakemake_timestamp"}


def bundle_files(root: str | Path) -> list[str]:
    """The files a bundle's manifest lists: every file under ``root`` (relative POSIX paths,
    sorted) but the manifest itself and the ``.snakemake_timestamp`` that Snakemake puts in a
    ``directory()`` output after the rule wrote it."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).as_posix() not in _NOT_LISTED)


# ------------------------------------------------------------------------------ loading


@dataclass(frozen=True)
class Bundle:
    root: Path
    meta: dict
    manifest: dict

    def model_paths(self, target: str, folds: list[int] | None = None) -> list[tuple[int, Path]]:
        models = self.meta["targets"][target]["models"]
        chosen = [(m["fold"], self.root / m["path"]) for m in models if folds is None or m["fold"] in folds]
        if folds is not None and len(chosen) != len(set(folds)):
            have = [m["fold"] for m in models]
            raise InputError(f"the bundle has folds {have} of {target}, not {sorted(folds)}", path=self.root / "bundle.json",
                             fix="choose folds the bundle holds")
        return chosen

    @property
    def template_dir(self) -> Path:
        return self.root / self.meta["template"]["dir"]

    @property
    def settings(self):
        from tissuefate.preprocessing.workflow import PreprocessingSettings

        # The bundle stores the settings object whole; two of its fields come from outside the
        # config's preprocessing section (cohort.tmax_threshold_s and the top-level seed).
        pre = dict(self.meta["preprocessing"])
        config = {"cohort": {"tmax_threshold_s": pre.pop("tmax_threshold_s")}, "preprocessing": pre}
        if "random_seed" in pre:
            config["seed"] = pre.pop("random_seed")
        return PreprocessingSettings.from_config(config)

    @property
    def threshold(self) -> float:
        return float(self.meta["probability_threshold"])


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle and check it: format and versions, every file's SHA-256, no file missing
    or extra. Any failure is an :class:`InputError` naming the file and the fix."""
    import tissuefate

    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        raise InputError("this is not a tissuefate model bundle (no manifest.json)", path=root,
                         fix="give the folder the workflow wrote as results/bundle")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"the bundle manifest cannot be read ({err})", path=manifest_path, fix=_FIX_REBUILD) from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise InputError(
            f"bundle format {manifest.get('format')!r} version {manifest.get('format_version')!r}; this tissuefate "
            f"reads {BUNDLE_FORMAT!r} version {BUNDLE_FORMAT_VERSION}", path=manifest_path, fix=_FIX_REBUILD)
    if manifest.get("tissuefate_version") != tissuefate.__version__:
        raise InputError(
            f"the bundle was written by tissuefate {manifest.get('tissuefate_version')}, this is tissuefate "
            f"{tissuefate.__version__}", path=manifest_path,
            fix=f"install tissuefate=={manifest.get('tissuefate_version')} to use it, or rebuild the bundle with this version")
    import torch

    major = lambda v: str(v).split(".")[0]  # noqa: E731
    if major(manifest.get("torch_version")) != major(torch.__version__):
        raise InputError(f"the bundle's models were saved with torch {manifest.get('torch_version')}, this is torch "
                         f"{torch.__version__}", path=manifest_path, fix="install the torch version of the bundle")
    files = manifest.get("files") or {}
    present = set(bundle_files(root))
    for name in sorted(set(files) - present):
        raise InputError("a file listed in the bundle manifest is missing", path=root / name, fix=_FIX_REBUILD)
    for name in sorted(present - set(files)):
        raise InputError("a file in the bundle is not listed in its manifest (added or renamed)", path=root / name,
                         fix="remove the file, or rebuild the bundle")
    for name, digest in sorted(files.items()):
        if sha256(root / name) != digest:
            raise InputError("the file's SHA-256 does not match the bundle manifest (corrupted or modified)",
                             path=root / name, fix=_FIX_REBUILD)
    meta = json.loads((root / "bundle.json").read_text())
    return Bundle(root=root, meta=meta, manifest=manifest)
