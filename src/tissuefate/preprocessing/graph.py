"""The registration graph of one participant: a nipype workflow of the small antspyx
interfaces (rigid coregistration onto the baseline DWI, affine + SyN normalization to MNI,
one composed transform per map, QC measures)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nipype.interfaces.utility as niu
import nipype.pipeline.engine as pe
import numpy as np
from nipype import config as nipype_config
from nipype import logging as nipype_logging

from tissuefate.preprocessing import interfaces as itf
from tissuefate.preprocessing.inputs import ParticipantInputs
from tissuefate.preprocessing.settings import PreprocessingSettings
from tissuefate.preprocessing.template import TemplateFiles


def registration_resolution(image: str | Path, setting: int | str = "auto") -> int:
    """The template grid to register ``image`` on: ``auto`` is the image's voxel size
    (geometric mean, whole mm, 2 to 4). Registering finer than the data gains nothing and,
    on the simulated cohorts, cost 50 % more displacement and a 3-10 % volume bias."""
    if setting != "auto":
        return int(setting)
    zooms = nib.load(str(image)).header.get_zooms()[:3]
    return int(np.clip(round(float(np.prod(zooms)) ** (1 / 3)), 2, 4))


def build_workflow(
    inputs: ParticipantInputs,
    settings: PreprocessingSettings,
    template: TemplateFiles,
    checks: dict,
    base_dir: str | Path,
    registration_template: TemplateFiles | None = None,
):
    """The nipype workflow of one participant (run it with ``.run()``). ``template`` gives
    the output grid; ``registration_template`` (default: the same) the registration's."""

    nipype_config.set("logging", "workflow_level", "WARNING")
    nipype_config.set("logging", "interface_level", "WARNING")
    nipype_logging.update_logging(nipype_config)
    wf = pe.Workflow(name=f"preproc_{inputs.label}", base_dir=str(base_dir))
    wf.config["execution"] = {
        "stop_on_first_crash": "true",
        "remove_unnecessary_outputs": "false",
        "crashfile_format": "txt",
        "crashdump_dir": str(base_dir),
        "create_report": "false",
    }
    reg_image = str(inputs.b0 if checks["registration_image"] == "b0" else inputs.b1000)
    reg_tpl = registration_template or template
    tpl = str(reg_tpl.registration_target(checks["registration_image"], settings.template_contrast))
    reg_mask = str(reg_tpl.brain_mask)
    tmask = str(template.brain_mask)

    def rigid(name: str, fixed, moving, **kw):
        node = itf.RigidCoregistration(fixed_image=str(fixed), moving_image=str(moving), random_seed=settings.random_seed, **kw)
        return pe.Node(node, name=f"coreg_{name}")

    adc_reg = rigid("adc", inputs.b1000, inputs.adc, identity_if_same_grid=True)
    lesmask = pe.Node(
        itf.LesionMetricMask(
            adc=str(inputs.adc),
            dwi=str(inputs.b1000),
            reference=reg_image,
            adc_factor=checks["adc_factor"],
            adc_threshold_um2_per_s=settings.adc_threshold_um2_per_s,
            adc_min_valid_um2_per_s=settings.adc_min_valid_um2_per_s,
            dilation_mm=settings.lesion_exclusion_dilation_mm,
            csf_adc_min_um2_per_s=settings.csf_adc_min_um2_per_s,
            min_dwi_ratio=settings.adc_mask_min_dwi_ratio,
            min_cluster_ml=settings.lesion_exclusion_min_cluster_ml,
        ),
        name="lesion_metric_mask",
    )
    normalize = pe.Node(
        itf.TemplateNormalization(
            moving_image=reg_image, template=tpl, template_mask=reg_mask, syn_iterations=list(settings.syn_iterations), random_seed=settings.random_seed
        ),
        name="normalize",
    )
    wf.connect([(adc_reg, lesmask, [("transforms", "adc_transforms")]), (lesmask, normalize, [("metric_mask", "metric_mask")])])

    warps: list[tuple[str, object]] = []

    def warp(key: str, moving: str, *, interp: str = "linear", fov: bool = False, native=None, session=None):
        node = pe.Node(
            itf.ApplyTransforms(moving_image=moving, reference_image=tmask, interpolation=interp, field_of_view=fov, out_name=f"{key}.nii.gz"),
            name=f"warp_{key}",
        )
        wf.connect(normalize, "forward_transform", node, "template_transform")
        if native is not None:
            wf.connect(native, "transforms", node, "native_transforms")
        if session is not None:
            wf.connect(session, "transforms", node, "session_transforms")
        warps.append((key, node))

    warp("DWI", str(inputs.b1000))
    warp("dwi_fov", str(inputs.b1000), fov=True)
    warp("ADC", str(inputs.adc), native=adc_reg)
    warp("adc_fov", str(inputs.adc), fov=True, native=adc_reg)
    if inputs.perfusion:
        perf_reg = rigid("perfusion", reg_image, inputs.perfusion["CBV"])
        for name, path in inputs.perfusion.items():
            warp(name, str(path), native=perf_reg)
        warp("perf_fov", str(inputs.perfusion["CBV"]), fov=True, native=perf_reg)
        if inputs.tmax_followup is not None:
            fu_reg = rigid("followup_tmax", inputs.perfusion["Tmax"], inputs.tmax_followup, rank_intensities=True)
            warp("Tmax_followup", str(inputs.tmax_followup), native=perf_reg, session=fu_reg)
            warp("followup_fov", str(inputs.tmax_followup), fov=True, native=perf_reg, session=fu_reg)
    if inputs.flair is not None:
        # A follow-up FLAIR is from another session days later: start from the centres of mass.
        init = "center_of_mass" if inputs.flair_session == "final" else "identity"
        flair_reg = rigid("flair", reg_image, inputs.flair, initialization=init)
        warp("FLAIR", str(inputs.flair), native=flair_reg)
    if checks["lesion_on"] == "flair":
        warp("final_infarct", str(inputs.lesion), native=flair_reg)
    elif checks["lesion_on"] == "dwi":
        warp("final_infarct", str(inputs.lesion))  # linear: binarized keeping its volume (derive_mni_maps)

    merge = pe.Node(niu.Merge(len(warps)), name="collect")
    for k, (_, node) in enumerate(warps, start=1):
        wf.connect(node, "output_image", merge, f"in{k}")
    params = {
        "label": inputs.label,
        "adc_factor": checks["adc_factor"],
        "tmax_factor": checks.get("tmax_factor", 1.0),
        "tmax_followup_factor": checks.get("tmax_followup_factor", 1.0),
        "tmax_threshold_s": settings.tmax_threshold_s,
        "adc_threshold_um2_per_s": settings.adc_threshold_um2_per_s,
        "adc_min_valid_um2_per_s": settings.adc_min_valid_um2_per_s,
        "csf_adc_min_um2_per_s": settings.csf_adc_min_um2_per_s,
        "parenchyma_tissue_min_probability": settings.parenchyma_tissue_min_probability,
        "bilateral_min_fraction": settings.bilateral_min_fraction,
        "stroke_side_min_cluster_ml": settings.stroke_side_min_cluster_ml,
        "adc_mask_min_dwi_ratio": settings.adc_mask_min_dwi_ratio,
    }
    derive = pe.Node(
        itf.DeriveMNIMaps(warped_names=[k for k, _ in warps], template_mask=tmask, tissue_probseg=str(template.tissue_probseg), params=params),
        name="derive_mni_maps",
    )
    wf.connect(merge, "out", derive, "warped_files")

    foreground = pe.Node(itf.NativeForeground(image=str(inputs.b1000)), name="native_foreground")
    warp_fg = pe.Node(itf.ApplyTransforms(reference_image=reg_mask, interpolation="genericLabel", out_name="foreground.nii.gz"), name="warp_foreground")
    measures = pe.Node(itf.RegistrationMeasures(template=tpl, template_mask=reg_mask), name="registration_measures")
    wf.connect(
        [
            (foreground, warp_fg, [("mask", "moving_image")]),
            (normalize, warp_fg, [("forward_transform", "template_transform")]),
            (normalize, measures, [("warped_image", "warped_image"), ("forward_transform", "forward_transform")]),
            (warp_fg, measures, [("output_image", "foreground_mni")]),
        ]
    )
    return wf
