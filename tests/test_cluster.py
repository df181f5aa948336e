"""How training and prediction jobs ask Slurm for GPUs, and how often the Slurm executor polls
(tissuefate.cluster).

The sbatch options these resources become are checked against a real Slurm cluster in
tests/test_slurm.py::test_training_job_gets_the_gpu_it_asks_for; the poll limit is on in
that file's end-to-end study (and measured by bench/bench_slurm.py)."""

import asyncio
import logging
import types

import pytest

from tissuefate.cluster import gpu_resources, limit_slurm_status_interval
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


def _status_poll_interval_after_a_poll(executor_class, init_seconds):
    """Run the Slurm executor's status poll once (no active jobs: the plugin's fast path, which
    resets the interval to the profile's init seconds) and return the wait before the next poll."""
    executor = object.__new__(executor_class)
    executor._next_seconds_between_status_checks = None
    executor.workflow = types.SimpleNamespace(
        executor_settings=types.SimpleNamespace(init_seconds_before_status_checks=init_seconds),
        remote_execution_settings=types.SimpleNamespace(seconds_between_status_checks=10),
    )
    executor.logger = logging.getLogger("test")

    async def poll():
        return [job async for job in executor.check_active_jobs([])]

    assert asyncio.run(poll()) == []
    return executor.next_seconds_between_status_checks


def test_slurm_status_interval_limit_wraps_the_plugins_poll():
    from snakemake_executor_plugin_slurm import Executor

    original = Executor.check_active_jobs
    try:
        assert _status_poll_interval_after_a_poll(Executor, 40) == 40  # the plugin's own
        assert limit_slurm_status_interval(None) is False
        assert limit_slurm_status_interval("") is False
        assert Executor.check_active_jobs is original
        assert limit_slurm_status_interval("3") is True
        assert _status_poll_interval_after_a_poll(Executor, 40) == 3
        assert _status_poll_interval_after_a_poll(Executor, 2) == 2  # shorter waits stay
        assert limit_slurm_status_interval(15) is True  # a second call replaces the limit
        assert _status_poll_interval_after_a_poll(Executor, 40) == 15
        assert Executor.check_active_jobs._tissuefate_original is original
        with pytest.raises(ValueError, match="> 0 seconds"):
            limit_slurm_status_interval(0)
    finally:
        Executor.check_active_jobs = original
