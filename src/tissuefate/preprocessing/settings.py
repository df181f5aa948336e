"""The preprocessing settings: the config's ``preprocessing:`` section (and
``cohort.tmax_threshold_s``), defaults and allowed values from the config schema."""

from __future__ import annotations

from dataclasses import dataclass

from tissuefate.config import section, section_defaults











_DEFAULTS = section_defaults("preprocessing")


@dataclass(frozen=True)
class PreprocessingSettings:
    """The ``preprocessing:`` section of the config (plus ``cohort.tmax_threshold_s``); every
    default and allowed value is in the config schema."""

    adc_unit: str = _DEFAULTS["adc_unit"]
    adc_threshold_um2_per_s: float = _DEFAULTS["adc_threshold_um2_per_s"]
    tmax_threshold_s: float = section_defaults("cohort")["tmax_threshold_s"]
    template_resolution_mm: float = _DEFAULTS["template_resolution_mm"]
    registration_resolution_mm: int | str = _DEFAULTS["registration_resolution_mm"]
    registration_image: str = _DEFAULTS["registration_image"]
    template_contrast: str = _DEFAULTS["template_contrast"]
    syn_iterations: tuple[int, ...] = tuple(_DEFAULTS["syn_iterations"])
    lesion_exclusion_dilation_mm: float = _DEFAULTS["lesion_exclusion_dilation_mm"]
    lesion_exclusion_min_cluster_ml: float = _DEFAULTS["lesion_exclusion_min_cluster_ml"]
    adc_mask_min_dwi_ratio: float = _DEFAULTS["adc_mask_min_dwi_ratio"]
    adc_min_valid_um2_per_s: float = _DEFAULTS["adc_min_valid_um2_per_s"]
    csf_adc_min_um2_per_s: float = _DEFAULTS["csf_adc_min_um2_per_s"]
    parenchyma_tissue_min_probability: float = _DEFAULTS["parenchyma_tissue_min_probability"]
    bilateral_min_fraction: float = _DEFAULTS["bilateral_min_fraction"]
    stroke_side_min_cluster_ml: float = _DEFAULTS["stroke_side_min_cluster_ml"]
    min_perfusion_overlap_fraction: float = _DEFAULTS["min_perfusion_overlap_fraction"]
    qc_min_mutual_information: float = _DEFAULTS["qc_min_mutual_information"]
    qc_min_brain_dice: float = _DEFAULTS["qc_min_brain_dice"]
    qc_brain_volume_ratio_range: tuple[float, float] = tuple(_DEFAULTS["qc_brain_volume_ratio_range"])
    qc_max_nonlinear_p95_mm: float = _DEFAULTS["qc_max_nonlinear_p95_mm"]
    on_registration_failure: str = _DEFAULTS["on_registration_failure"]
    random_seed: int = 20210401  # the config's top-level seed when there is one

    @classmethod
    def from_config(cls, config: dict | None) -> "PreprocessingSettings":
        config = config or {}
        pre = section(config, "preprocessing")
        pre["tmax_threshold_s"] = (config.get("cohort") or {}).get("tmax_threshold_s", cls.tmax_threshold_s)
        if "seed" in config:
            pre["random_seed"] = int(config["seed"])
        pre["syn_iterations"] = tuple(int(i) for i in pre["syn_iterations"])
        pre["qc_brain_volume_ratio_range"] = tuple(float(v) for v in pre["qc_brain_volume_ratio_range"])
        return cls(**pre)
