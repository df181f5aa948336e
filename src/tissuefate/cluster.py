"""How the study's jobs ask a Slurm cluster for resources (profiles/slurm/README.md).

snakemake-executor-plugin-slurm 2.6.1 turns a job's resources into sbatch options:
``gpu=N`` -> ``--gpus=N`` (``gpu_model`` -> ``--gpus=TYPE:N``), ``gres="gpu:N"`` ->
``--gres=gpu:N``, and adds ``--ntasks-per-gpu`` to every GPU job unless ``tasks_per_gpu`` is 0.
Sites differ in what they accept: ``--gpus`` needs ``select/cons_tres``, and some refuse
``--ntasks-per-gpu`` beside ``--cpus-per-task`` (plugin issues #342, #373). The config's
``training.resources`` says which form to use; this module turns it into the resources.
"""

from __future__ import annotations


def gpu_resources(resources: dict) -> dict[str, int | str]:
    """The GPU resources of a training or prediction job, from ``training.resources``.

    Always returns the same four keys, so a rule can list them whatever the form:
    ``gpu`` (count for ``--gpus``), ``gres`` (``--gres`` string), ``gpu_model`` (type for
    ``--gpus=TYPE:N``) and ``tasks_per_gpu`` (0: no ``--ntasks-per-gpu``).
    """
    count = int(resources.get("gpus", 0))
    form = resources.get("gpu_request", "gpus")
    gpu_type = resources.get("gpu_type", "") or ""
    tasks = int(resources.get("tasks_per_gpu", 0))
    if form not in ("gpus", "gres"):
        raise ValueError(f"training.resources.gpu_request must be 'gpus' or 'gres', not {form!r}")
    if count == 0:
        return {"gpu": 0, "gres": "", "gpu_model": "", "tasks_per_gpu": 0}
    if form == "gres":
        gres = f"gpu:{gpu_type}:{count}" if gpu_type else f"gpu:{count}"
        return {"gpu": 0, "gres": gres, "gpu_model": "", "tasks_per_gpu": tasks}
    return {"gpu": count, "gres": "", "gpu_model": gpu_type, "tasks_per_gpu": tasks}


def limit_slurm_status_interval(max_seconds: int | float | str | None) -> bool:
    """Poll Slurm for finished jobs at least every ``max_seconds`` (None or "": the plugin's own).

    snakemake-executor-plugin-slurm (2.6.1, and 2.7.1/2.8.0 alike) waits 10 s longer after
    every status poll that finds no finished job, up to 180 s, and goes back to
    ``slurm-init-seconds-before-status-checks`` only when one finishes: a job that ends after a
    quiet spell is seen up to 180 s late, and every job that depends on it waits that long to be
    submitted. That spares the accounting database on a busy cluster; on a small one with short
    jobs it is most of the wall time (BENCHMARKS.md, "Where the Slurm leg's extra time goes").

    This wraps the executor's ``check_active_jobs`` (the method every Snakemake remote executor
    implements) so that after each poll the wait before the next one
    (``next_seconds_between_status_checks``, a property of Snakemake's ``RemoteExecutor``) is at
    most ``max_seconds``. The profile calls it when ``TISSUEFATE_SLURM_MAX_STATUS_INTERVAL`` is
    set. Returns True when the limit is in place; calling it again changes the limit.
    """
    if max_seconds is None or str(max_seconds).strip() == "":
        return False
    limit = float(max_seconds)
    if not limit > 0:
        raise ValueError(f"the Slurm status-poll interval must be > 0 seconds, not {max_seconds!r}")
    from snakemake_executor_plugin_slurm import Executor

    original = getattr(Executor.check_active_jobs, "_tissuefate_original", Executor.check_active_jobs)

    async def check_active_jobs(self, active_jobs):
        async for job in original(self, active_jobs):
            yield job
        if self.next_seconds_between_status_checks > limit:
            self.next_seconds_between_status_checks = limit

    check_active_jobs._tissuefate_original = original
    check_active_jobs.__doc__ = original.__doc__
    Executor.check_active_jobs = check_active_jobs
    return True
