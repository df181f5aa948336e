"""Small nipype interfaces, each a thin wrapper around one function of
:mod:`tissuefate.preprocessing.registration`, :mod:`.normalization` or :mod:`.qc`.

They write into nipype's node folder (``runtime.cwd``); the workflow's last step copies
the results to their BIDS-derivative names.
"""

from __future__ import annotations

import os

os.environ.setdefault("NIPYPE_NO_ET", "1")  # no version check over the network

from nipype.interfaces.base import (  # noqa: E402
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from tissuefate.preprocessing import registration as reg  # noqa: E402
from tissuefate.preprocessing.mni_maps import derive_mni_maps  # noqa: E402
from tissuefate.preprocessing.qc import native_foreground, registration_measures  # noqa: E402


def _p(runtime, name: str) -> str:
    return os.path.join(runtime.cwd, name)


class _RigidInputSpec(BaseInterfaceInputSpec):
    fixed_image = File(exists=True, mandatory=True, desc="image defining the target space")
    moving_image = File(exists=True, mandatory=True)
    initialization = traits.Enum("identity", "center_of_mass", usedefault=True)
    identity_if_same_grid = traits.Bool(False, usedefault=True, desc="skip when both share a grid (DWI and ADC)")
    rank_intensities = traits.Bool(False, usedefault=True, desc="register intensity ranks (Tmax maps)")
    random_seed = traits.Int(desc="seed of ANTs' metric sampling")


class _RigidOutputSpec(TraitedSpec):
    transforms = traits.List(File(exists=True), desc="ANTs transforms moving -> fixed; [] for the identity")


class RigidCoregistration(SimpleInterface):
    """Rigid mutual-information coregistration (ADC, perfusion, follow-up Tmax, FLAIR)."""

    input_spec = _RigidInputSpec
    output_spec = _RigidOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        reg.set_random_seed(i.random_seed if isdefined(i.random_seed) else None)
        if i.identity_if_same_grid and reg.same_grid(i.fixed_image, i.moving_image):
            self._results["transforms"] = []
        else:
            t = reg.coregister_rigid(
                i.fixed_image, i.moving_image, _p(runtime, "rigid_"), initialization=i.initialization, rank_intensities=i.rank_intensities
            )
            self._results["transforms"] = [str(t)]
        return runtime


class _LesionMaskInputSpec(BaseInterfaceInputSpec):
    adc = File(exists=True, mandatory=True)
    dwi = File(exists=True, mandatory=True, desc="the b1000 DWI (lesions are bright)")
    reference = File(exists=True, mandatory=True, desc="the registration image (its grid)")
    adc_transforms = traits.List(File(exists=True), value=[], usedefault=True)
    adc_factor = traits.Float(mandatory=True, desc="stored ADC -> 10^-6 mm^2/s")
    adc_threshold_um2_per_s = traits.Float(620.0, usedefault=True)
    adc_min_valid_um2_per_s = traits.Float(100.0, usedefault=True)
    dilation_mm = traits.Float(4.0, usedefault=True)
    csf_adc_min_um2_per_s = traits.Float(1500.0, usedefault=True)
    min_dwi_ratio = traits.Float(1.0, usedefault=True)
    min_cluster_ml = traits.Float(0.5, usedefault=True)


class _LesionMaskOutputSpec(TraitedSpec):
    metric_mask = File(exists=True)
    excluded_ml = traits.Float()


class LesionMetricMask(SimpleInterface):
    """Mask of what the normalization metric may use: all but the dilated ADC lesion."""

    input_spec = _LesionMaskInputSpec
    output_spec = _LesionMaskOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        path, ml = reg.lesion_metric_mask(
            i.adc,
            i.dwi,
            i.reference,
            list(i.adc_transforms),
            _p(runtime, "metric_mask.nii.gz"),
            adc_factor=i.adc_factor,
            adc_threshold_um2_per_s=i.adc_threshold_um2_per_s,
            dilation_mm=i.dilation_mm,
            adc_min_valid_um2_per_s=i.adc_min_valid_um2_per_s,
            csf_adc_min_um2_per_s=i.csf_adc_min_um2_per_s,
            min_dwi_ratio=i.min_dwi_ratio,
            min_cluster_ml=i.min_cluster_ml,
        )
        self._results.update(metric_mask=str(path), excluded_ml=ml)
        return runtime


class _NormInputSpec(BaseInterfaceInputSpec):
    moving_image = File(exists=True, mandatory=True)
    template = File(exists=True, mandatory=True)
    template_mask = File(exists=True, mandatory=True)
    metric_mask = File(exists=True, desc="moving-space mask of voxels the metric may use")
    syn_iterations = traits.List(traits.Int(), value=[40, 20, 0], usedefault=True)
    random_seed = traits.Int(desc="seed of ANTs' metric sampling")


class _NormOutputSpec(TraitedSpec):
    forward_transform = File(exists=True, desc="composite .h5, native -> MNI")
    inverse_transform = File(exists=True, desc="composite .h5, MNI -> native")
    warped_image = File(exists=True)


class TemplateNormalization(SimpleInterface):
    """Affine + SyN to the MNI template with the lesion masked out of the metric."""

    input_spec = _NormInputSpec
    output_spec = _NormOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        reg.set_random_seed(i.random_seed if isdefined(i.random_seed) else None)
        fwd, inv, warped = reg.normalize_to_template(
            i.moving_image,
            i.template,
            i.template_mask,
            i.metric_mask if i.metric_mask else None,
            _p(runtime, "norm_"),
            syn_iterations=list(i.syn_iterations),
        )
        self._results.update(forward_transform=str(fwd), inverse_transform=str(inv), warped_image=str(warped))
        return runtime


class _ApplyInputSpec(BaseInterfaceInputSpec):
    moving_image = File(exists=True, mandatory=True)
    reference_image = File(exists=True, mandatory=True)
    template_transform = File(exists=True, mandatory=True, desc="native -> MNI composite")
    native_transforms = traits.List(File(exists=True), value=[], usedefault=True, desc="e.g. perfusion -> DWI")
    session_transforms = traits.List(File(exists=True), value=[], usedefault=True, desc="e.g. follow-up -> baseline perfusion")
    interpolation = traits.Enum("linear", "genericLabel", "nearestNeighbor", usedefault=True)
    field_of_view = traits.Bool(False, usedefault=True, desc="warp an image of ones on the moving grid instead")
    out_name = traits.Str("warped.nii.gz", usedefault=True)


class _ApplyOutputSpec(TraitedSpec):
    output_image = File(exists=True)


class ApplyTransforms(SimpleInterface):
    """One resampling into MNI through the composed chain (template + native + session)."""

    input_spec = _ApplyInputSpec
    output_spec = _ApplyOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        moving = i.moving_image
        if i.field_of_view:
            moving = str(reg.fov_indicator(moving, _p(runtime, "fov_ones.nii.gz")))
        chain = [i.template_transform] + list(i.native_transforms) + list(i.session_transforms)
        out = reg.apply_transforms(moving, i.reference_image, chain, _p(runtime, i.out_name), interpolation=i.interpolation)
        self._results["output_image"] = str(out)
        return runtime


class _ForegroundInputSpec(BaseInterfaceInputSpec):
    image = File(exists=True, mandatory=True)


class _ForegroundOutputSpec(TraitedSpec):
    mask = File(exists=True)


class NativeForeground(SimpleInterface):
    """The patient's foreground on its native grid, for the brain-Dice QC measure."""

    input_spec = _ForegroundInputSpec
    output_spec = _ForegroundOutputSpec

    def _run_interface(self, runtime):
        self._results["mask"] = str(native_foreground(self.inputs.image, _p(runtime, "foreground.nii.gz")))
        return runtime


class _QCInputSpec(BaseInterfaceInputSpec):
    template = File(exists=True, mandatory=True)
    template_mask = File(exists=True, mandatory=True)
    warped_image = File(exists=True, mandatory=True)
    foreground_mni = File(exists=True, mandatory=True)
    forward_transform = File(exists=True, mandatory=True)


class _QCOutputSpec(TraitedSpec):
    measures = traits.Dict()


class RegistrationMeasures(SimpleInterface):
    """QC measures of the normalization (no truth needed); see :mod:`.qc`."""

    input_spec = _QCInputSpec
    output_spec = _QCOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        self._results["measures"] = registration_measures(i.template, i.template_mask, i.warped_image, i.foreground_mni, i.forward_transform)
        return runtime


class _DeriveInputSpec(BaseInterfaceInputSpec):
    warped_files = traits.List(File(exists=True), mandatory=True, desc="maps warped to MNI")
    warped_names = traits.List(traits.Str(), mandatory=True, desc="their names: DWI, ADC, Tmax, ..., dwi_fov, perf_fov, ...")
    template_mask = File(exists=True, mandatory=True)
    tissue_probseg = File(exists=True, mandatory=True)
    params = traits.Dict(mandatory=True, desc="adc_factor, tmax_factor, thresholds, ... (see derive_mni_maps)")


class _DeriveOutputSpec(TraitedSpec):
    out_files = traits.Dict(desc="output key -> file in the node folder")
    summary = traits.Dict()


class DeriveMNIMaps(SimpleInterface):
    """Masks, parenchymal-mean normalization and stroke side, in MNI space."""

    input_spec = _DeriveInputSpec
    output_spec = _DeriveOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        files, summary = derive_mni_maps(dict(zip(i.warped_names, i.warped_files)), i.template_mask, i.tissue_probseg, dict(i.params), runtime.cwd)
        self._results.update(out_files=files, summary=summary)
        return runtime
