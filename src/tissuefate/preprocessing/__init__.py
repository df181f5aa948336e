"""Per-participant preprocessing (METHOD.md section 4): ANTs coregistration onto the baseline
DWI, affine + SyN normalization to the MNI152NLin2009aSym template, resampling of every map
with one composed transform, coverage and threshold masks, parenchymal-mean normalization,
stroke side, and registration QC. See docs/preprocessing.md.

Modules: ``registration`` (antspyx calls on files), ``normalization`` (numpy in MNI space),
``interfaces`` (nipype wrappers), ``workflow`` (the per-participant job), ``qc`` (QC
measures, figure, accuracy against the simulator's truth), ``template`` (the MNI files),
``phantom`` (a known-truth participant for tests and the benchmark).
"""

import os

os.environ.setdefault("NIPYPE_NO_ET", "1")  # no version check over the network (before nipype loads)

from tissuefate.preprocessing.workflow import (  # noqa: E402
    ParticipantInputs,
    PreprocessingSettings,
    preprocess_inputs,
    preprocess_participant,
    to_native,
)

__all__ = [
    "ParticipantInputs",
    "PreprocessingSettings",
    "preprocess_inputs",
    "preprocess_participant",
    "to_native",
]
