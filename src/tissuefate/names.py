"""The study's vocabulary, defined once: targets, approaches, reperfusion groups and the
BIDS ``desc`` labels of the targets. Rule files (workflow/rules/common.smk) and the package
import these names; nothing else spells them out.
"""

from __future__ import annotations

# Reperfusion groups (METHOD.md section 3), in the study's order.
MINIMAL, PARTIAL, MAJOR, UNKNOWN = "minimal", "partial", "major", "unknown"
REPERFUSION_GROUPS = (MINIMAL, PARTIAL, MAJOR, UNKNOWN)
# The groups whose patients pretrain the shared encoder (no target of their own).
PRETRAINING_GROUPS = (PARTIAL, UNKNOWN)

# Target -> the reperfusion group whose final infarct defines it.
TISSUE_AT_RISK, ISCHEMIC_CORE = "tissue_at_risk", "ischemic_core"
TARGET_GROUPS = {TISSUE_AT_RISK: MINIMAL, ISCHEMIC_CORE: MAJOR}
TARGETS = tuple(TARGET_GROUPS)
# A fold's model is also applied to the other target's test patients (the mismatch ratio).
OTHER_TARGET = {TISSUE_AT_RISK: ISCHEMIC_CORE, ISCHEMIC_CORE: TISSUE_AT_RISK}
# BIDS labels are alphanumeric: the targets' desc- labels.
TARGET_DESC = {TISSUE_AT_RISK: "tissueatrisk", ISCHEMIC_CORE: "ischemiccore"}

# The shared pretraining job (not an approach of its own), the two deep-learning approaches
# (fine-tuned from it, trained from scratch) and the thresholding baseline.
PRETRAIN = "pretrain"
PRETRAINING, SEPARATE, THRESHOLDING = "pretraining", "separate", "thresholding"
TRAINED_APPROACHES = (PRETRAINING, SEPARATE)
APPROACHES = TRAINED_APPROACHES + (THRESHOLDING,)
