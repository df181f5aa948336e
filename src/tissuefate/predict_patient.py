"""One new patient through a model bundle: `tissuefate predict`.

    the patient's DWI, ADC, Tmax, MTT, CBF, CBV (NIfTI, a BIDS participant or DICOM folders)
      -> unit checks (ADC unit, Tmax plausibility, RGB captures refused)
      -> the study's preprocessing (registration to MNI, normalization, masks) with the
         bundle's settings and template
      -> every model of the bundle's ensemble, in MNI, mapped back onto the patient's DWI grid
      -> ensemble mean and SD, masks, volumes, mismatch, trial criteria, domain checks
      -> out/: NIfTI maps in the patient's space, summary.json, report.png, report.html

The output folder is written atomically: on any error it is left as it was (or absent).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate import triage
from tissuefate.bundle import Bundle, load_bundle
from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_dir
from tissuefate.io.bids import PERFUSION_MAPS, ParticipantFiles, read_sidecar, validate_label
from tissuefate.io.nifti import load_image, save_image
from tissuefate.measures import voxel_volume_ml

log = logging.getLogger("tissuefate")

TARGET_DESC = {"tissue_at_risk": "tissueatrisk", "ischemic_core": "ischemiccore"}
# Tmax beyond this (99th percentile of the positive voxels) is not physiological: a map stored
# in 0.1 s (x10, some vendors) or in ms without a Units field.
TMAX_PLAUSIBLE_P99_S = 40.0
SUMMARY = "summary.json"
NOT_FOR_CLINICAL_USE = "Research software: not for clinical use without local validation."


@dataclass
class PatientMaps:
    """The admission maps of one patient, as files (b0 and the perfusion maps optional)."""

    dwi: Path
    adc: Path
    perfusion: dict[str, Path] = field(default_factory=dict)  # Tmax, MTT, CBF, CBV
    b0: Path | None = None
    label: str = "patient"

    @classmethod
    def from_bids(cls, bids_root: str | Path, participant: str) -> "PatientMaps":
        label = validate_label(participant)
        f = ParticipantFiles(Path(bids_root), label)
        perf = {m: f.baseline(m) for m in PERFUSION_MAPS if f.baseline(m).exists()}
        if perf and len(perf) != len(PERFUSION_MAPS):
            missing = [m for m in PERFUSION_MAPS if m not in perf]
            raise InputError(f"only some perfusion maps exist (missing {', '.join(missing)})", participant=label,
                             path=f.baseline(missing[0]), fix="add the missing maps")
        b0 = f.baseline("b0")
        return cls(dwi=f.baseline("b1000"), adc=f.baseline("adc"), perfusion=perf, b0=b0 if b0.exists() else None,
                   label=label)


# ------------------------------------------------------------------------------ checks


def _refuse_rgb(path: Path, label: str, what: str) -> None:
    img = nib.load(str(path))
    # NIfTI datatypes 128 (RGB24) and 2304 (RGBA32): what dcm2niix makes of a colour capture.
    if img.header.get_data_dtype().names is not None or int(img.header["datatype"]) in (128, 2304):
        raise InputError(f"the {what} is an RGB image (a secondary capture / screenshot), not a quantitative map",
                         participant=label, path=path,
                         fix="export the quantitative map (grey-scale values in physical units) from the scanner or "
                             "the perfusion software, not the coloured display")


def check_patient_maps(maps: PatientMaps) -> None:
    """Missing files, RGB captures and an implausible Tmax scale, before anything runs."""
    label = maps.label
    named = {"DWI (b1000)": maps.dwi, "ADC map": maps.adc, **{f"{k} map": v for k, v in maps.perfusion.items()}}
    if maps.b0 is not None:
        named["b0 image"] = maps.b0
    for what, path in named.items():
        if path is None or not Path(path).exists():
            raise InputError(f"the {what} is missing", participant=label, path=path,
                             fix=f"give the {what} (see `tissuefate predict --help`)")
        try:
            _refuse_rgb(Path(path), label, what)
        except InputError:
            raise
        except Exception:  # unreadable: load_image says so in the study's words
            load_image(path, label, what=what)
            raise
    if maps.perfusion:
        missing = [m for m in PERFUSION_MAPS if m not in maps.perfusion]
        if missing:
            raise InputError(f"the perfusion maps {', '.join(missing)} are missing", participant=label,
                             fix="give all four perfusion maps (Tmax, MTT, CBF, CBV), or none for a diffusion-only estimate")
        check_tmax_scale(maps.perfusion["Tmax"], label)


def check_tmax_scale(path: Path, label: str) -> float:
    """The Tmax map must be in seconds (or declare ms): refuse a map whose 99th percentile is not
    physiological (stored x10 or in ms without a Units field). Returns that percentile in s."""
    units = str(read_sidecar(Path(path), label).get("Units", "")).strip().lower()
    factor = 1e-3 if units in ("ms", "msec", "milliseconds") else 1.0
    data = load_image(path, label, what="Tmax map").get_fdata(dtype=np.float32) * factor
    positive = data[data > 0]
    p99 = float(np.percentile(positive, 99)) if positive.size else 0.0
    if p99 > TMAX_PLAUSIBLE_P99_S:
        raise InputError(
            f"the Tmax map's 99th percentile is {p99:.0f} s (sidecar Units: {units or 'none'}); Tmax above "
            f"{TMAX_PLAUSIBLE_P99_S:g} s is not physiological, so the map is probably stored in 0.1 s (x10) or in ms",
            participant=label, path=path,
            fix='divide the map by 10 (0.1 s units) or declare "Units": "ms" in its JSON sidecar, then run again')
    return p99


# ------------------------------------------------------------------------------ helpers


class _Phases:
    """Wall and CPU seconds (this process, all its threads: ANTs and torch run in it) per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> float:
        wall, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = {"wall_s": round(wall - self._wall, 2), "cpu_s": round(cpu - self._cpu, 2)}
        self._wall, self._cpu = wall, cpu
        return self.seconds[name]["wall_s"]


def _save(data: np.ndarray, affine: np.ndarray, path: Path, dtype=np.float32) -> None:
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _interval(values: list[float]) -> list[float]:
    return [round(float(min(values)), 1), round(float(max(values)), 1)]


def domain_warnings(bundle: Bundle, dwi: Path, preproc: dict) -> list[str]:
    """Where the patient lies outside what the bundle's models were trained on."""
    domain = bundle.meta.get("training_domain") or {}
    out = []
    zooms = [float(z) for z in nib.load(str(dwi)).header.get_zooms()[:3]]
    rng = domain.get("native_voxel_mm")
    if rng and (min(zooms) < 0.5 * rng[0] or max(zooms) > 1.5 * rng[1]):
        out.append(f"resolution: DWI voxel size {[round(z, 2) for z in zooms]} mm, training cohort {rng[0]}-{rng[1]} mm")
    cov = domain.get("coverage_fraction_of_brain")
    frac = preproc.get("coverage_fraction_of_brain")
    if cov and frac is not None and frac < cov[0] - 0.1:
        out.append(f"coverage: {100 * frac:.0f} % of the brain has diffusion and perfusion data, training cohort "
                   f"{100 * cov[0]:.0f}-{100 * cov[1]:.0f} %")
    for name, value in (preproc.get("parenchymal_mean") or {}).items():
        r = (domain.get("parenchymal_mean") or {}).get(name)
        if r and name in ("ADC", "Tmax", "CBF", "CBV", "MTT") and not (r[0] / 2 <= value <= 2 * r[1]):
            out.append(f"units: parenchymal mean {name} {value:.3g}, training cohort {r[0]:.3g}-{r[1]:.3g} "
                       "(physical units after the unit checks)")
    return out


# ------------------------------------------------------------------------------ the pipeline


def predict_patient(bundle_path: str | Path, maps: PatientMaps, out_dir: str | Path, *, folds: list[int] | None = None,
                    adc_unit: str | None = None, threads: int | None = None, keep_mni: bool = False,
                    exact: bool = False) -> dict:
    """Predict one patient with the bundle; write ``out_dir`` atomically; return the summary.

    ``folds``: only these fold models (default: the whole ensemble). ``adc_unit``: overrides the
    bundle's ADC unit policy (``auto``, or a unit such as ``10^-3 mm^2/s``). ``exact``: run the
    models with the study's arithmetic (maps bit for bit those of the study's prediction stage
    with one thread); by default they run folded for inference (batch-norm folded into the
    convolutions, channels-last, and mapped back only within the box around the coverage: maps within
    ~1e-6 of the study's, the models about 1.4x faster)."""
    t0 = time.perf_counter()
    phases = _Phases()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / SUMMARY).exists():
        raise InputError("the output folder exists and is not a previous `tissuefate predict` output", path=out_dir,
                         fix="give a new or empty folder")
    bundle = load_bundle(bundle_path)
    check_patient_maps(maps)
    if threads:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(int(threads))
    settings = bundle.settings
    if adc_unit:
        from dataclasses import replace

        settings = replace(settings, adc_unit=adc_unit)
    label = maps.label
    timings: dict[str, float] = {}
    phases.lap("bundle_and_input_checks")
    with tempfile.TemporaryDirectory(prefix="tissuefate-predict.") as tmp:
        work = Path(tmp).resolve()
        from tissuefate.preprocessing.workflow import ParticipantInputs, preprocess_inputs

        inputs = ParticipantInputs(label=label, b1000=Path(maps.dwi).resolve(), adc=Path(maps.adc).resolve(),
                                   b0=None if maps.b0 is None else Path(maps.b0).resolve(),
                                   perfusion={k: Path(v).resolve() for k, v in maps.perfusion.items()})
        # The bundle's template is read-only: preprocessing writes nothing there when every file exists.
        preproc = preprocess_inputs(inputs, work, settings, template_dir=bundle.template_dir, work_dir=work / ".work")
        timings["preprocessing_s"] = phases.lap("preprocessing")
        ref = Path(maps.dwi).resolve()
        ref_img = nib.load(str(ref))
        affine = ref_img.affine
        voxel_ml = voxel_volume_ml(affine)
        vol = lambda mask: round(float(np.count_nonzero(mask)) * voxel_ml, 1)  # noqa: E731

        from tissuefate.io import derivatives
        from tissuefate.preprocessing.workflow import support_box, to_native_many

        # The thresholding masks in the patient's space (nearest-label resampling, as to_native),
        # all on the template grid of the preprocessing: one ANTs call.
        thr_mni: dict[str, np.ndarray] = {}
        mni_affine = None
        for key in ("adc620", "tmax6s"):
            p = derivatives.preproc_mask(work, label, key)
            if p.exists():
                img = nib.load(str(p))
                thr_mni[key], mni_affine = np.asarray(img.dataobj, dtype=np.float32), img.affine
        if maps.perfusion:
            tmax = nib.load(str(derivatives.preproc_map(work, label, "Tmax", "preproc")))
            cov = np.asarray(nib.load(str(derivatives.preproc_mask(work, label, "coverage"))).dataobj) > 0.5
            thr_mni["tmax10s"] = ((np.asarray(tmax.dataobj, dtype=np.float64) > 10.0) & cov).astype(np.float32)
            # The models' maps are 0 outside coverage: its native footprint bounds where they go.
            thr_mni["coverage"] = cov.astype(np.float32)
            mni_affine = tmax.affine
        thr_masks = {}
        if thr_mni:
            native = to_native_many(np.stack(list(thr_mni.values())), mni_affine, label, work, ref,
                                    interpolation="genericLabel")
            thr_masks = {k: native[i] > 0.5 for i, k in enumerate(thr_mni)}
        coverage_native = thr_masks.pop("coverage", None)
        phases.lap("thresholding_masks_to_native")

        files: dict[str, tuple] = {}
        mni_copies: dict[str, tuple] = {}
        members: dict[str, list[dict]] = {}
        ensemble: dict[str, dict] = {}
        timings["models_s"] = 0.0
        if maps.perfusion:
            from tissuefate.dataset import load_participant
            from tissuefate.prediction import predict_ensemble

            volumes = load_participant(work, label, with_target=False)
            runs = [(target, fold, path) for target in TARGET_DESC for fold, path in bundle.model_paths(target, folds)]
            # Every model in MNI (as the study's prediction stage), then all maps back in one resampling.
            probs_mni = predict_ensemble([path for _, _, path in runs], volumes, workers=threads or 1, exact=exact)
            models_s = phases.lap("models_inference")
            # Exact: every voxel of the DWI grid, as the study's to_native. Otherwise only the box
            # around the coverage's native footprint, widened by two template voxels (linear
            # interpolation reaches one): ANTs costs per voxel; values within ~1e-6.
            within = None
            if not exact:
                margin = np.ceil(2 * nib.affines.voxel_sizes(volumes.affine).max() /
                                 nib.affines.voxel_sizes(affine)).astype(int) + 1
                within = support_box(coverage_native, margin)
            natives = to_native_many(np.stack(probs_mni), volumes.affine, label, work, ref, within=within)
            for target in TARGET_DESC:
                probs = []
                members[target] = []
                for i, (tgt, fold, _) in enumerate(runs):
                    if tgt != target:
                        continue
                    probs.append(natives[i])
                    members[target].append({"fold": fold, "volume_ml": vol(natives[i] >= bundle.threshold)})
                    if keep_mni:
                        mni_copies[f"{target}_fold-{fold}_mni.nii.gz"] = (probs_mni[i], volumes.affine)
                stack = np.stack(probs)
                mean = stack.mean(axis=0)
                sd = stack.std(axis=0)
                mask = mean >= bundle.threshold
                ensemble[target] = {"probability": mean, "sd": sd, "mask": mask, "volume_ml": vol(mask)}
                desc = TARGET_DESC[target]
                files[f"sub-{label}_space-orig_desc-{desc}_probseg.nii.gz"] = (mean, np.float32)
                files[f"sub-{label}_space-orig_desc-{desc}_mask.nii.gz"] = (mask, np.uint8)
                files[f"sub-{label}_space-orig_desc-{desc}SD_probseg.nii.gz"] = (sd, np.float32)
                if len(probs) == 1:
                    # One model: its own map, bit for bit (no averaging arithmetic).
                    files[f"sub-{label}_space-orig_desc-{desc}_probseg.nii.gz"] = (probs[0], np.float32)
            models_s += phases.lap("models_to_native_and_ensemble")
            timings["models_s"] = round(models_s, 2)

        summary = build_summary(bundle, maps, preproc, ensemble, members, thr_masks, vol, folds)
        if ensemble:
            summary["model"]["arithmetic"] = ("exact: the study's (bit for bit its prediction maps)" if exact else
                                              "folded for inference: batch-norm in the convolutions, channels-last "
                                              "(within ~1e-6 of the study's maps; --exact for bit for bit)")
        summary["warnings"] = warnings_of(bundle, maps, preproc, summary.get("model"))
        summary["runtime_s"] = {**timings, "total_s": round(time.perf_counter() - t0, 2)}
        with atomic_dir(out_dir) as out:
            for name, (data, dtype) in files.items():
                _save(data, affine, out / name, dtype)
            for name, (data, mni_affine) in mni_copies.items():
                save_image(data.astype(np.float32), mni_affine, out / name)  # as the study's prediction stage
            for key in ("adc620", "tmax6s"):
                if key in thr_masks:
                    _save(thr_masks[key], affine, out / f"sub-{label}_space-orig_desc-{key}_mask.nii.gz", np.uint8)
            qc = work / preproc["outputs"]["qc_figure"]
            if qc.exists():
                shutil.copyfile(qc, out / "registration_qc.png")
            from tissuefate.patient_report import write_report

            write_report(summary, ref_img, {t: e["mask"] for t, e in ensemble.items()},
                         {"tissue_at_risk": (thr_masks["tmax6s"] | thr_masks["adc620"]) if "tmax6s" in thr_masks else None,
                          "ischemic_core": thr_masks.get("adc620")},
                         out / "report.png", out / "report.html")
            phases.lap("outputs_and_report")
            summary["runtime_s"]["phases"] = phases.seconds
            summary["runtime_s"]["total_cpu_s"] = round(sum(v["cpu_s"] for v in phases.seconds.values()), 2)
            (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(out_dir, 0o777 & ~umask)  # mkdtemp made it private
    log.info("sub-%s: predicted in %.1f s -> %s", label, time.perf_counter() - t0, out_dir)
    return summary


# A lesion of one stroke lies in one hemisphere's arterial territories (a bilateral one in
# both, at most as large): a predicted volume above half the brain that has data is not one.
IMPLAUSIBLE_FRACTION_OF_COVERAGE = 0.5


def implausible_volume_warnings(model: dict, coverage_ml: float | None) -> list[str]:
    """The model's volumes that no stroke has: more than half of the brain with data."""
    if not coverage_ml:
        return []
    out = []
    for key, name in (("tissue_at_risk_ml", "tissue at risk"), ("core_ml", "core")):
        value = model.get(key)
        if value is not None and value > IMPLAUSIBLE_FRACTION_OF_COVERAGE * coverage_ml:
            out.append(f"implausible model output: {name} {value:.0f} mL is {100 * value / coverage_ml:.0f} % of the "
                       f"{coverage_ml:.0f} mL of brain with data; the bundle's models may be undertrained (see its "
                       "model_card.md) or this patient's maps unlike their training data: do not use these volumes")
    return out


def warnings_of(bundle: Bundle, maps: PatientMaps, preproc: dict, model: dict | None = None) -> list[str]:
    out = []
    qc = preproc.get("registration_qc", {})
    if not qc.get("passed", True):
        out.append("registration QC failed: " + "; ".join(qc.get("reasons", [])) + " (see registration_qc.png); "
                   "the maps and volumes may be wrong")
    out += ["outside the training domain: " + w for w in domain_warnings(bundle, maps.dwi, preproc)]
    out += implausible_volume_warnings(model or {}, preproc.get("coverage_ml"))
    return out


def build_summary(bundle: Bundle, maps: PatientMaps, preproc: dict, ensemble: dict, members: dict, thr_masks: dict,
                  vol, folds) -> dict:
    label = maps.label
    thr = {"tissue_at_risk_ml": vol(thr_masks["tmax6s"] | thr_masks["adc620"]) if "tmax6s" in thr_masks else None,
           "core_ml": vol(thr_masks["adc620"]) if "adc620" in thr_masks else None,
           "tmax10s_ml": vol(thr_masks["tmax10s"]) if "tmax10s" in thr_masks else None}
    summary: dict = {
        "participant_id": f"sub-{label}",
        "notice": NOT_FOR_CLINICAL_USE,
        "inputs": {"dwi": str(maps.dwi), "adc": str(maps.adc), "b0": None if maps.b0 is None else str(maps.b0),
                   **{k: str(v) for k, v in maps.perfusion.items()}},
        "bundle": {"path": str(bundle.root), "approach": bundle.meta["approach"],
                   "folds": sorted({f for t in members.values() for f in (m["fold"] for m in t)}) or None,
                   "tissuefate_version": bundle.manifest["tissuefate_version"]},
        "space": "orig (the patient's DWI grid)",
        "probability_threshold": bundle.threshold,
        "preprocessing": {k: preproc.get(k) for k in ("adc_unit", "tmax_unit", "registration_qc", "coverage_ml",
                                                      "coverage_fraction_of_brain", "stroke_side", "parenchymal_mean")},
        "thresholding": {**thr, "definition": f"tissue at risk: Tmax > {bundle.settings.tmax_threshold_s:g} s or ADC < "
                                              f"{bundle.settings.adc_threshold_um2_per_s:g}; core: ADC < "
                                              f"{bundle.settings.adc_threshold_um2_per_s:g} x 10^-6 mm^2/s"},
    }
    if thr["tissue_at_risk_ml"] is not None:
        summary["thresholding"].update(triage.mismatch(thr["tissue_at_risk_ml"], thr["core_ml"]))
        summary["thresholding"]["mismatch_ratio"] = triage.json_number(summary["thresholding"]["mismatch_ratio"])
    if ensemble:
        tar, core = ensemble["tissue_at_risk"]["volume_ml"], ensemble["ischemic_core"]["volume_ml"]
        mm = triage.mismatch(tar, core)
        pairs = [triage.mismatch(a["volume_ml"], b["volume_ml"]) for a, b in
                 zip(members["tissue_at_risk"], members["ischemic_core"])]
        ratios = [p["mismatch_ratio"] for p in pairs if not math.isnan(p["mismatch_ratio"])]
        summary["model"] = {
            "tissue_at_risk_ml": tar, "tissue_at_risk_ml_interval": _interval([m["volume_ml"] for m in members["tissue_at_risk"]]),
            "core_ml": core, "core_ml_interval": _interval([m["volume_ml"] for m in members["ischemic_core"]]),
            "mismatch_ml": mm["mismatch_ml"], "mismatch_ml_interval": _interval([p["mismatch_ml"] for p in pairs]),
            "mismatch_ratio": triage.json_number(mm["mismatch_ratio"]),
            "mismatch_ratio_interval": [triage.json_number(min(ratios)), triage.json_number(max(ratios))] if ratios else None,
            "interval": "min-max over the ensemble's fold models (each model's own mask)",
            "members": {t: m for t, m in members.items()},
        }
    criteria: dict = {}
    sources = {}
    for trial in triage.TRIALS:
        criteria[trial] = {}
        if ensemble:
            q = {**triage.mismatch(summary["model"]["tissue_at_risk_ml"], summary["model"]["core_ml"]),
                 "tmax10s_ml": thr["tmax10s_ml"]}
            criteria[trial]["model"] = triage.evaluate(trial, q)
        if thr["tissue_at_risk_ml"] is not None:
            q = {**triage.mismatch(thr["tissue_at_risk_ml"], thr["core_ml"]), "tmax10s_ml": thr["tmax10s_ml"]}
            criteria[trial]["thresholding"] = triage.evaluate(trial, q)
        elif thr["core_ml"] is not None:
            # Diffusion only: the core criterion alone can fail a patient, never pass one.
            criteria[trial]["thresholding"] = triage.evaluate(trial, {"core_ml": round(thr["core_ml"], 1)})
        sources[trial] = triage.TRIALS[trial]["source"]
        for v in criteria[trial].values():
            v.pop("source", None)
    summary["criteria"] = criteria
    summary["criteria_sources"] = sources
    if not maps.perfusion:
        summary["cannot_compute"] = [
            "tissue at risk (model and Tmax > 6 s thresholding): no perfusion maps",
            "model core estimate: the bundle's models need all 8 input channels (DWI, ADC, Tmax, MTT, CBF, CBV and the "
            "two threshold masks)",
            "mismatch volume and ratio, and therefore the DEFUSE 3, EXTEND-IA and SWIFT PRIME criteria",
        ]
        summary["core_estimate"] = {"core_ml": thr["core_ml"], "method": summary["thresholding"]["definition"].split("; ")[1]}
        summary["criteria_note"] = ("without perfusion only the core criterion can be checked: a core too large means "
                                    "'does not meet', otherwise the verdict is 'cannot be assessed'")
    return summary


# ------------------------------------------------------------------------------ command line


def add_predict_arguments(p) -> None:
    p.add_argument("--bundle", required=True, help="the model bundle folder (results/bundle of a study)")
    p.add_argument("--out", required=True, help="output folder (written atomically; a new or empty folder)")
    for name in ("dwi", "adc", "tmax", "mtt", "cbf", "cbv", "b0"):
        p.add_argument(f"--{name}", help=f"{name.upper()} as NIfTI, or a DICOM folder of one series"
                       + (" (optional)" if name == "b0" else ""))
    p.add_argument("--bids", help="a BIDS dataset: take the participant's baseline maps from it")
    p.add_argument("--participant", help="participant label in --bids (or a name for the output files)")
    p.add_argument("--adc-unit", help="override the bundle's ADC unit policy: auto, or e.g. '10^-3 mm^2/s'")
    p.add_argument("--folds", type=int, nargs="+", help="only these fold models of the ensemble")
    p.add_argument("--exact", action="store_true",
                   help="run the models with the study's arithmetic: maps bit for bit those of the study's prediction "
                        "stage (with --threads 1), about 1.4x slower; default: batch-norm folded, channels-last, "
                        "mapped back within the coverage's box (maps within ~1e-6)")
    p.add_argument("--threads", type=int, default=2,
                   help="ANTs threads, and how many models of the ensemble run side by side (one torch thread each)")


def maps_from_args(args, work: Path) -> PatientMaps:
    """The patient's maps from the command line; DICOM folders are converted into ``work``."""
    if args.bids:
        if not args.participant:
            raise InputError("--bids needs --participant", path=args.bids, fix="add --participant LABEL")
        return PatientMaps.from_bids(args.bids, args.participant)
    label = validate_label(args.participant or "patient")
    for name in ("dwi", "adc"):
        if not getattr(args, name):
            raise InputError(f"the {name.upper()} is missing", participant=label, fix=f"give --{name} FILE")
    given = {m: getattr(args, m.lower()) for m in PERFUSION_MAPS}
    perf = {m: v for m, v in given.items() if v}
    if perf and len(perf) != len(PERFUSION_MAPS):
        missing = [m for m in PERFUSION_MAPS if m not in perf]
        raise InputError(f"the perfusion maps {', '.join(missing)} are missing", participant=label,
                         fix=f"give --{' --'.join(m.lower() for m in missing)}, or no perfusion map for a diffusion-only core estimate")

    def resolve(name: str, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        if path.is_dir():
            from tissuefate.dicom import convert_series

            return convert_series(path, work / name, label=label, what=name)
        return path

    return PatientMaps(dwi=resolve("dwi", args.dwi), adc=resolve("adc", args.adc), b0=resolve("b0", args.b0),
                       perfusion={m: resolve(m, v) for m, v in perf.items()}, label=label)


def main_predict(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="tissuefate-dicom.") as tmp:
        maps = maps_from_args(args, Path(tmp))
        summary = predict_patient(args.bundle, maps, args.out, folds=args.folds, adc_unit=args.adc_unit,
                                  threads=args.threads, exact=args.exact)
    for w in summary.get("warnings", []):
        print(f"WARNING: {w}")
    for trial, by in summary["criteria"].items():
        for source, res in by.items():
            print(f"{trial} ({source} volumes): {res['verdict']}")
    print(f"Wrote {args.out}")
    return summary


def summary_table(folders, out_tsv: str | Path):
    """One row per predicted patient: volumes and verdicts (the Snakemake target's table)."""
    import pandas as pd

    rows = []
    for folder in folders:
        s = json.loads((Path(folder) / SUMMARY).read_text())
        row = {"participant_id": s["participant_id"], "warnings": " | ".join(s.get("warnings", []))}
        for key in ("tissue_at_risk_ml", "core_ml", "mismatch_ml", "mismatch_ratio"):
            row[f"model_{key}"] = (s.get("model") or {}).get(key)
            row[f"thresholding_{key}"] = s["thresholding"].get(key)
        for trial, by in s["criteria"].items():
            for source, res in by.items():
                row[f"{trial} ({source})"] = res["verdict"]
        rows.append(row)
    table = pd.DataFrame(rows)
    from tissuefate.io.atomic import atomic_path

    with atomic_path(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table
