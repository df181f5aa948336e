"""The clinical thresholding approach (METHOD.md section 6.3, RAPID-like), in MNI space:

    tissue at risk = Tmax > 6 s  or  ADC < 620 x 10^-6 mm^2/s
    ischemic core  = ADC < 620 x 10^-6 mm^2/s

A continuous score per voxel, so an AUC can be computed for thresholding as for the models
(our choice; the paper reports no AUC for it). Each criterion becomes a logistic function of
its signed distance to the threshold, in units of a scale::

    s_tmax = sigmoid((Tmax - 6 s) / tmax_scale_s)
    s_adc  = sigmoid((620 - ADC) / adc_scale_um2_per_s)
    core score           = s_adc
    tissue-at-risk score = max(s_tmax, s_adc)      (max is the fuzzy "or")

so the score is above 0.5 exactly where the clinical mask is 1: thresholding the score at
0.5 (as the models' probabilities are for the Dice score) gives back the clinical masks.
The core AUC does not depend on the scale (any increasing function of -ADC ranks voxels the
same); for tissue at risk the scales set how the two criteria trade off: with 2 s and
75 x 10^-6 mm^2/s, normal tissue (Tmax about 1 s, ADC about 800) sits 2.5 units below both.

Voxels outside the coverage mask score 0, and so do voxels the ADC < 620 mask leaves out for
being background (ADC below the valid minimum) or darker on DWI than normal tissue (partial
volume at the brain surface; see docs/preprocessing.md): the binary core is exactly the
``adc620`` model channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from tissuefate.config import section, section_defaults
from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.bids import validate_label
from tissuefate.io.derivatives import thresholding_map as thresholding_path  # noqa: F401  (this stage's output)
from tissuefate.names import TARGETS
from tissuefate.io.nifti import save_image



_PRE, _THR = section_defaults("preprocessing"), section_defaults("thresholding")


@dataclass(frozen=True)
class ThresholdingSettings:
    """Thresholds from ``cohort``/``preprocessing`` (one place each), scales from
    ``thresholding``; defaults and allowed values in the config schema."""

    tmax_threshold_s: float = section_defaults("cohort")["tmax_threshold_s"]
    adc_threshold_um2_per_s: float = _PRE["adc_threshold_um2_per_s"]
    tmax_scale_s: float = _THR["tmax_scale_s"]
    adc_scale_um2_per_s: float = _THR["adc_scale_um2_per_s"]
    adc_min_valid_um2_per_s: float = _PRE["adc_min_valid_um2_per_s"]
    adc_mask_min_dwi_ratio: float = _PRE["adc_mask_min_dwi_ratio"]

    @classmethod
    def from_config(cls, config: dict | None) -> "ThresholdingSettings":
        config = config or {}
        pre, thr = section(config, "preprocessing"), section(config, "thresholding")
        return cls(
            tmax_threshold_s=float((config.get("cohort") or {}).get("tmax_threshold_s", cls.tmax_threshold_s)),
            **{key: float(pre[key]) for key in ("adc_threshold_um2_per_s", "adc_min_valid_um2_per_s",
                                                "adc_mask_min_dwi_ratio")},
            **{key: float(thr[key]) for key in ("tmax_scale_s", "adc_scale_um2_per_s")},
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


_ABOVE_HALF = np.nextafter(np.float32(0.5), np.float32(1.0))


def _pin(score: np.ndarray, criterion: np.ndarray) -> np.ndarray:
    """float32 score, > 0.5 exactly where the clinical criterion holds (no rounding slip)."""
    score = np.asarray(score, dtype=np.float32)
    return np.where(criterion, np.maximum(score, _ABOVE_HALF), np.minimum(score, np.float32(0.5))).astype(np.float32)


def core_score(adc_um2_per_s: np.ndarray, settings: ThresholdingSettings = ThresholdingSettings()) -> np.ndarray:
    adc = np.asarray(adc_um2_per_s, dtype=np.float64)
    raw = _sigmoid((settings.adc_threshold_um2_per_s - adc) / settings.adc_scale_um2_per_s)
    return _pin(raw, adc < settings.adc_threshold_um2_per_s)


def tmax_score(tmax_s: np.ndarray, settings: ThresholdingSettings = ThresholdingSettings()) -> np.ndarray:
    tmax = np.asarray(tmax_s, dtype=np.float64)
    return _pin(_sigmoid((tmax - settings.tmax_threshold_s) / settings.tmax_scale_s), tmax > settings.tmax_threshold_s)


def threshold_scores(
    tmax_s: np.ndarray | None,
    adc_um2_per_s: np.ndarray,
    coverage: np.ndarray,
    settings: ThresholdingSettings = ThresholdingSettings(),
    *,
    dwi_normalized: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Score maps of both targets (tissue at risk only when Tmax is given).

    ``dwi_normalized`` (DWI / its parenchymal mean) applies the ADC mask's DWI condition."""
    cov = coverage > 0
    adc_ok = cov & (adc_um2_per_s > settings.adc_min_valid_um2_per_s)
    if dwi_normalized is not None and settings.adc_mask_min_dwi_ratio > 0:
        adc_ok &= dwi_normalized >= settings.adc_mask_min_dwi_ratio
    s_adc = np.where(adc_ok, core_score(adc_um2_per_s, settings), np.float32(0.0))
    scores = {"ischemic_core": s_adc.astype(np.float32)}
    if tmax_s is not None:
        s_tmax = np.where(cov, tmax_score(tmax_s, settings), np.float32(0.0))
        scores["tissue_at_risk"] = np.maximum(s_tmax, s_adc).astype(np.float32)
    return scores


def threshold_participant(
    label: str,
    results: str | Path,
    config: dict | ThresholdingSettings | None = None,
    targets: tuple[str, ...] = TARGETS,
    out_paths: dict[str, str | Path] | None = None,
) -> dict[str, Path]:
    """Read the participant's MNI maps, write one score map per target (to ``out_paths``,
    else the derivative names below ``results``). Returns target -> path."""
    label = validate_label(label)
    settings = config if isinstance(config, ThresholdingSettings) else ThresholdingSettings.from_config(config)
    paths = {
        "ADC": derivatives.preproc_map(results, label, "ADC", "preproc"),
        "Tmax": derivatives.preproc_map(results, label, "Tmax", "preproc"),
        "DWI": derivatives.preproc_map(results, label, "DWI", "normalized"),
        "coverage": derivatives.preproc_mask(results, label, "coverage"),
    }
    for key in ("ADC", "DWI", "coverage"):
        if not paths[key].exists():
            raise InputError("the preprocessed map is missing", participant=label, path=paths[key], fix="run the preprocessing of this participant first")
    if "tissue_at_risk" in targets and not paths["Tmax"].exists():
        raise InputError(
            "tissue at risk needs Tmax, and this participant has no perfusion",
            participant=label,
            path=paths["Tmax"],
            fix="threshold only the ischemic core for participants without perfusion",
        )
    ref = nib.load(str(paths["coverage"]))
    load = lambda k: nib.load(str(paths[k])).get_fdata(dtype=np.float32)  # noqa: E731
    tmax = load("Tmax") if "tissue_at_risk" in targets else None
    scores = threshold_scores(tmax, load("ADC"), load("coverage"), settings, dwi_normalized=load("DWI"))
    out = {}
    for target in targets:
        out[target] = Path(out_paths[target]) if out_paths else thresholding_path(results, label, target)
        save_image(scores[target], ref.affine, out[target])
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m tissuefate.thresholding", description=__doc__.split("\n")[0])
    parser.add_argument("--label", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--configfile", help="the workflow's YAML config")
    parser.add_argument("--settings-json", help="ThresholdingSettings fields as JSON (instead of --configfile)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    args = parser.parse_args(argv)
    if args.settings_json:
        config: dict | ThresholdingSettings = ThresholdingSettings(**json.loads(args.settings_json))
    elif args.configfile:
        import yaml

        config = yaml.safe_load(Path(args.configfile).read_text())
    else:
        config = None
    try:
        out = threshold_participant(args.label, args.results, config, tuple(args.targets))
    except InputError as err:
        print(f"error: {err}")
        return 2
    for target, path in out.items():
        print(f"{target}\t{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
