"""How training and prediction jobs ask Slurm for GPUs (tissuefate.cluster).

The sbatch options these resources become are checked against a real Slurm cluster in
tests/test_slurm.py::test_training_job_gets_the_gpu_it_asks_for."""

import pytest

from tissuefate.cluster import gpu_resources
from tissuefate.config import validate_config


def test_gpus_form_is_the_default():
    assert gpu_resources({"gpus": 1}) == {"gpu": 1, "gres": "", "gpu_model": "", "tasks_per_gpu": 0}
    assert gpu_resources({"gpus": 2, "gpu_type": "a100"}) == {
        "gpu": 2, "gres": "", "gpu_model": "a100", "tasks_per_gpu": 0}


def test_gres_form_with_and_without_type():
    assert gpu_resources({"gpus": 1, "gpu_request": "gres"}) == {
        "gpu": 0, "gres": "gpu:1", "gpu_model": "", "tasks_per_gpu": 0}
    assert gpu_resources({"gpus": 2, "gpu_request": "gres", "gpu_type": "h100"})["gres"] == "gpu:h100:2"


def test_no_gpu_asks_for_nothing():
    for form in ("gpus", "gres"):
        assert gpu_resources({"gpus": 0, "gpu_request": form, "gpu_type": "a100", "tasks_per_gpu": 2}) == {
            "gpu": 0, "gres": "", "gpu_model": "", "tasks_per_gpu": 0}


def test_tasks_per_gpu_only_when_asked():
    assert gpu_resources({"gpus": 1, "tasks_per_gpu": 1})["tasks_per_gpu"] == 1


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="gpu_request"):
        gpu_resources({"gpus": 1, "gpu_request": "gpu"})


def test_schema_defaults_and_enum(ci_config):
    resources = ci_config["training"]["resources"]
    assert (resources["gpu_request"], resources["gpu_type"], resources["tasks_per_gpu"]) == ("gpus", "", 0)
    bad = {**ci_config, "training": {**ci_config["training"],
                                     "resources": {**resources, "gpu_request": "gpu"}}}
    with pytest.raises(Exception, match="gpu_request|gpus|gres"):
        validate_config(bad)
