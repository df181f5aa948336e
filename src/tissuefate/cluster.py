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
