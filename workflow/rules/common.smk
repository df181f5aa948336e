# Paths and participants, defined once for every rule file.
from pathlib import Path

from tissuefate.cohort import read_participants
from tissuefate.simulation import participant_labels

BIDS = config["dataset"]["bids_dir"]
RESULTS = config.get("results_dir", "results")
LOGS = f"{RESULTS}/logs"
# Relative to the rule files in workflow/rules/.
ENV = "../../envs/tissuefate.yaml"

if config["dataset"]["simulate"]:
    # Known from the config alone, so the DAG is built before anything is simulated.
    SUBJECTS = participant_labels(config["simulation"])
else:
    SUBJECTS = [p.removeprefix("sub-") for p in read_participants(BIDS)["participant_id"]]


wildcard_constraints:
    subject="[A-Za-z0-9]+",


def participant_inputs(wildcards):
    """A participant's raw folder, and the lesion-mask folder where it exists (or will)."""
    inputs = {"raw": f"{BIDS}/sub-{wildcards.subject}"}
    lesions = f"{BIDS}/derivatives/lesions/sub-{wildcards.subject}"
    if config["dataset"]["simulate"] or Path(lesions).exists():
        inputs["lesions"] = lesions
    return inputs
