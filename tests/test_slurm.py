"""Runs workflows through a real Slurm cluster with `snakemake --profile profiles/slurm`.

Needs the single-node cluster of `.ci/slurm/setup.sh` (or any Slurm cluster whose
default partition can run a job asking for `--gpus=1`); every test is skipped with the
reason when `sinfo` is missing or no node is up. Nothing here is mocked: the jobs are
submitted with sbatch, their IDs are read back from the plugin's logs and looked up
with `squeue --states=all` / `scontrol show job`.

Timings for CI come from the profile's environment variables (see
profiles/slurm/README.md); already-set variables win. The end-to-end test runs the CI
study twice (locally, then through Slurm) in fresh copies of the repository (tracked
files plus untracked ones git does not ignore); during the Slurm run it scancels one
training job after its first epoch, which must be retried, resume from its checkpoint and
still give byte-identical tables. Set TISSUEFATE_E2E_LOCAL_ROOT to the
root of an existing local `--configfile config/ci.yaml` run of the same commit to skip
the local run. No clock expects a run to finish in some time (a slower machine must pass):
tests/workflow_runner.py stops a run only when it stalls (nothing new in Snakemake's output
or its jobs' logs for TISSUEFATE_TEST_STALL_SECONDS, 900 s) or never ends
(TISSUEFATE_TEST_LIMIT_SECONDS, 5400 s), and says how far it got.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from workflow_runner import LIMIT_SECONDS, STALL_SECONDS, failure, run_watched

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake") if (BIN / "snakemake").exists() else "snakemake"

# Short status polling for CI; the cluster of .ci/slurm/setup.sh has MinJobAge=600,
# so squeue keeps finished jobs long enough (>= 3 x the init delay).
CI_ENV = {
    "TISSUEFATE_SLURM_INIT_SECONDS": "3",
    "TISSUEFATE_SLURM_STATUS_INTERVAL": "3",
    "TISSUEFATE_SLURM_MAX_STATUS_INTERVAL": "3",
    "TISSUEFATE_SLURM_LATENCY_WAIT": "5",
    # 24 patients in bundles of 6: two bundles side by side on the 2-CPU CI node
    "TISSUEFATE_SLURM_PATIENTS_PER_JOB": "6",
}

SUBMITTED_RE = re.compile(
    r"Job (?P<job>\S+) has been submitted with SLURM jobid (?P<id>\d+) \(log: (?P<log>[^)]+)\)"
)
USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing"}


# --------------------------------------------------------------------------- helpers


def _cluster_problem() -> str | None:
    """Why the Slurm tests cannot run here, or None when a cluster answers."""
    if shutil.which("sinfo") is None:
        return "no Slurm here: 'sinfo' not found (start a cluster with: sudo .ci/slurm/setup.sh)"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "Slurm cluster not up: 'sinfo' timed out (is slurmctld running? .ci/slurm/setup.sh)"
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        return (f"Slurm cluster not up (start it with .ci/slurm/setup.sh): sinfo failed: "
                f"{msg[-1] if msg else proc.returncode}")
    states = {s.rstrip("*~#!%$@^-+") for s in proc.stdout.split()}
    if not states & USABLE_NODE_STATES:
        return f"Slurm cluster not up: no idle node (sinfo states: {sorted(states) or 'none'})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)


class SlurmMonitor:
    """Polls `squeue --states=all` in the background and keeps the last state of every
    job whose working directory lies under `root`, so jobs are still known after
    slurmctld has forgotten them (MinJobAge)."""

    FMT = "%i|%T|%k|%Z"

    def __init__(self, root: Path, interval: float = 1.0):
        self.root = str(Path(root).resolve())
        self.interval = interval
        self.jobs: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SlurmMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll()
        self.cancel_leftovers()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            out = subprocess.run(
                ["squeue", "--noheader", "--states=all", f"--format={self.FMT}"],
                capture_output=True, text=True, timeout=20,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 4:
                continue
            jobid, state, comment, workdir = parts
            if workdir == self.root or workdir.startswith(self.root + os.sep):
                self.jobs[jobid] = {"state": state, "comment": comment, "workdir": workdir}

    def state(self, jobid: str) -> str | None:
        """Last state seen by squeue, else what `scontrol show job` says, else None."""
        self.poll()
        if jobid in self.jobs:
            return self.jobs[jobid]["state"]
        proc = subprocess.run(
            ["scontrol", "show", "job", jobid], capture_output=True, text=True, timeout=20
        )
        m = re.search(r"JobState=(\S+)", proc.stdout)
        return m.group(1) if m else None

    def cancel_leftovers(self) -> None:
        active = [j for j, info in self.jobs.items()
                  if info["state"] in ("PENDING", "RUNNING", "CONFIGURING", "SUSPENDED")]
        if active:
            subprocess.run(["scancel", *active], capture_output=True, timeout=20)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in CI_ENV.items():
        env.setdefault(key, value)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SNAKEMAKE_PROFILE", None)
    env.update(extra or {})
    return env


def run_snakemake(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    """snakemake ARGS in `cwd`, stopped only if it stalls or never ends (workflow_runner)."""
    run = run_watched([SNAKEMAKE, *args], cwd=cwd, env=env or _env())
    if run.stopped:
        pytest.fail(failure(run, f"snakemake {' '.join(args)}"))
    return run


def submitted(output: str) -> list[dict[str, str]]:
    """Jobs the plugin reports as submitted: Snakemake job, Slurm job ID, log path."""
    return [m.groupdict() for m in SUBMITTED_RE.finditer(output)]


def slurm_log_ids(workdir: Path) -> dict[str, set[str]]:
    """Slurm job IDs per rule/group directory from .snakemake/slurm_logs/<rule>/**/<id>.log."""
    logdir = workdir / ".snakemake" / "slurm_logs"
    ids: dict[str, set[str]] = {}
    for log in logdir.rglob("*.log"):
        if log.stem.isdigit():
            top = log.relative_to(logdir).parts[0]
            ids.setdefault(top, set()).add(log.stem)
    return ids


def write_workflow(path: Path, snakefile: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Snakefile").write_text(textwrap.dedent(snakefile))
    return path


def tail(text: str, n: int = 6000) -> str:
    return text[-n:]


# ----------------------------------------------------------------- small workflows

SMALL_WORKFLOW = r"""
    localrules: all, seed

    rule all:
        input: "results/seed.txt", "results/double.txt", "results/gpu.txt"

    # runs in the main snakemake process, not on the cluster
    rule seed:
        output: "results/seed.txt"
        shell: "printf '20\n%s\n' ${{SLURM_JOB_ID:-local}} > {output}"

    rule double:
        input: "results/seed.txt"
        output: "results/double.txt"
        threads: 1
        shell: "printf '%s\n%s\n' $(( $(head -n1 {input}) * 2 )) ${{SLURM_JOB_ID:-none}} > {output}"

    rule gpu:
        input: "results/double.txt"
        output: "results/gpu.txt"
        resources: gpu=1
        shell:
            "printf '%s\n%s\n%s\n' $(( $(head -n1 {input}) + 2 ))"
            " ${{CUDA_VISIBLE_DEVICES:-none}} ${{SLURM_JOB_ID:-none}} > {output}"
"""


def test_cluster_rules_run_as_slurm_jobs(slurm_cluster, tmp_path):
    wf = write_workflow(tmp_path / "wf", SMALL_WORKFLOW)
    with SlurmMonitor(wf) as mon:
        proc = run_snakemake(["--profile", str(PROFILE)], cwd=wf)
    out = proc.stdout
    assert proc.returncode == 0, tail(out)

    # outputs are right, the local rule ran outside Slurm
    seed = (wf / "results/seed.txt").read_text().split()
    double = (wf / "results/double.txt").read_text().split()
    gpu = (wf / "results/gpu.txt").read_text().split()
    assert seed == ["20", "local"]
    assert double[0] == "40" and double[1].isdigit(), double
    assert gpu[0] == "42" and gpu[2].isdigit(), gpu
    assert gpu[1] == "0", f"GPU job saw CUDA_VISIBLE_DEVICES={gpu[1]!r}"

    # exactly the two cluster rules were submitted, each with its own log file
    jobs = submitted(out)
    assert len(jobs) == 2, tail(out)
    ids = slurm_log_ids(wf)
    assert ids == {"rule_double": {double[1]}, "rule_gpu": {gpu[2]}}, ids
    assert {j["id"] for j in jobs} == {double[1], gpu[2]}
    for j in jobs:
        assert Path(j["log"]).is_file(), j
        assert Path(j["log"]).stem == j["id"]

    # ... and Slurm knows them as completed jobs of this workflow
    for jobid, rule in ((double[1], "rule_double"), (gpu[2], "rule_gpu")):
        assert mon.state(jobid) == "COMPLETED", (jobid, mon.jobs)
        assert mon.jobs[jobid]["comment"] == rule
    gpu_job = subprocess.run(["scontrol", "show", "job", gpu[2]],
                             capture_output=True, text=True).stdout
    assert "gpu" in gpu_job, gpu_job  # TresPerJob=gres:gpu:1


# A training job asks for its GPU the way the study's rules do (tissuefate.cluster.gpu_resources
# from the config's training.resources): --gpus=TYPE:N or --gres=gpu:TYPE:N, no --ntasks-per-gpu.
GPU_WORKFLOW = r"""
    from tissuefate.cluster import gpu_resources

    GPU = gpu_resources({"gpus": 1, "gpu_request": config["gpu_request"],
                         "gpu_type": config.get("gpu_type", "")})

    rule train:
        output: "results/train.txt"
        threads: 1
        resources:
            gpu=GPU["gpu"],
            gres=GPU["gres"],
            gpu_model=GPU["gpu_model"],
            tasks_per_gpu=GPU["tasks_per_gpu"],
        # the allocation as Slurm shows it while the job runs (per node, with GPU indices)
        shell:
            "scontrol -d show job $SLURM_JOB_ID > results/allocation.txt; "
            "printf '%s\\n%s\\n' ${{SLURM_JOB_ID:-none}} ${{CUDA_VISIBLE_DEVICES:-none}} > {output}"
"""


def _cluster_gpu_type() -> str:
    """The type of the GPUs the cluster declares (`sinfo` Gres, e.g. gpu:ci:1), '' if untyped."""
    gres = subprocess.run(["sinfo", "--noheader", "--format=%G"], capture_output=True,
                          text=True, timeout=20).stdout
    m = re.search(r"gpu:([A-Za-z][\w.]*):\d", gres)
    return m.group(1) if m else ""


@pytest.mark.parametrize("gpu_request", ["gpus", "gres"])
def test_training_job_gets_the_gpu_it_asks_for(slurm_cluster, tmp_path, gpu_request):
    gpu_type = _cluster_gpu_type()
    wf = write_workflow(tmp_path / "wf", GPU_WORKFLOW)
    args = ["--profile", str(PROFILE), "--config", f"gpu_request={gpu_request}"]
    if gpu_type:
        args.append(f"gpu_type={gpu_type}")
    with SlurmMonitor(wf) as mon:
        proc = run_snakemake(args, cwd=wf)
    assert proc.returncode == 0, tail(proc.stdout)
    jobid, visible = (wf / "results/train.txt").read_text().split()
    assert mon.state(jobid) == "COMPLETED", mon.jobs
    assert visible == "0", f"the job saw CUDA_VISIBLE_DEVICES={visible!r}"

    job = (wf / "results/allocation.txt").read_text()
    assert f"JobId={jobid} " in job, job
    fields = dict(kv.split("=", 1) for kv in job.split() if "=" in kv)
    wanted = f"gres/gpu:{gpu_type}:1" if gpu_type else "gres/gpu:1"
    # --gpus is a per-job TRES request, --gres a per-node one
    asked = fields.get("TresPerJob" if gpu_request == "gpus" else "TresPerNode", "")
    assert wanted in asked.replace("gres:gpu", "gres/gpu"), job
    other = fields.get("TresPerNode" if gpu_request == "gpus" else "TresPerJob", "")
    assert "gpu" not in other, job
    # ... and got it: the node's allocation holds one GPU (GRES=gpu:ci:1(IDX:0)), and so does
    # AllocTRES where the cluster tracks GPUs as a TRES (needs slurmdbd)
    assert re.search(r"\bGRES=gpu(:[\w.]+)?:1\(IDX:\d+\)", job), job
    if "gres/gpu" in fields.get("AllocTRES", ""):
        assert re.search(r"gres/gpu(:[\w.]+)?=1\b", fields["AllocTRES"]), job
    # never --ntasks-per-gpu (sites refuse it beside --cpus-per-task)
    assert "NtasksPerTRES" not in fields or fields["NtasksPerTRES"] in ("0", ""), job
    assert fields.get("NumTasks", "1") == "1", job


# Two bundles of two patients' chains (group "patient", as the study's per-patient rules).
BUNDLE_WORKFLOW = r"""
    localrules: all

    rule all:
        input: expand("out/{i}.b", i=range(4))

    rule a:
        output: "out/{i}.a"
        group: "patient"
        threads: 1
        shell: "echo $SLURM_JOB_ID $SLURM_CPUS_PER_TASK > {output}"

    rule b:
        input: "out/{i}.a"
        output: "out/{i}.b"
        group: "patient"
        threads: 1
        shell: "cat {input} > {output}"
"""


def test_bundle_reserves_the_cpus_it_uses(slurm_cluster, tmp_path):
    """The plugin's job step runs a bundle's steps one after another (--jobs 1): the profile
    makes each bundle reserve one step's CPUs, so bundles run side by side, none idle."""
    wf = write_workflow(tmp_path / "wf", BUNDLE_WORKFLOW)
    with SlurmMonitor(wf) as mon:
        proc = run_snakemake(["--profile", str(PROFILE)], cwd=wf,
                             env=_env({"TISSUEFATE_SLURM_PATIENTS_PER_JOB": "2"}))
    assert proc.returncode == 0, tail(proc.stdout)
    seen = [(wf / f"out/{i}.b").read_text().split() for i in range(4)]
    bundles = {jobid for jobid, _ in seen}
    assert len(bundles) == 2, seen
    assert all(cpus == "1" for _, cpus in seen), seen
    for jobid in bundles:
        assert mon.state(jobid) == "COMPLETED", mon.jobs
        job = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True,
                             timeout=20).stdout
        assert re.search(r"\bNumCPUs=1\b", job), job


FAILING_WORKFLOW = r"""
    rule fail:
        output: "results/never.txt"
        shell: "echo 'deliberate failure' >&2; exit 3"
"""


def test_failing_job_stops_workflow_with_log_path(slurm_cluster, tmp_path):
    wf = write_workflow(tmp_path / "wf", FAILING_WORKFLOW)
    # no retries (the profile's default is 2) to keep CI short: retries are
    # exercised by test_cancelled_job_is_retried
    with SlurmMonitor(wf) as mon:
        proc = run_snakemake(["--profile", str(PROFILE), "--retries", "0"], cwd=wf)
    out = proc.stdout
    assert proc.returncode != 0, tail(out)
    assert not (wf / "results/never.txt").exists()

    jobs = submitted(out)
    assert len(jobs) == 1, tail(out)
    for j in jobs:
        assert mon.state(j["id"]) == "FAILED", (j, mon.jobs)
    last_log = jobs[-1]["log"]
    assert Path(last_log).is_file()
    assert "deliberate failure" in Path(last_log).read_text()
    # the error report names the failed job's Slurm log
    error_part = out[out.index(f"SLURM jobid {jobs[-1]['id']}"):]
    assert "Error in rule fail" in error_part
    assert last_log in error_part.split("Error in rule fail", 1)[1], tail(out)


CANCEL_WORKFLOW = r"""
    localrules: all

    rule all:
        input: "results/slow.txt"

    rule slow:
        output: "results/slow.txt"
        # the first attempt is long enough to be cancelled mid-run
        resources: delay=lambda wildcards, attempt: 300 if attempt == 1 else 1
        shell:
            "echo $SLURM_JOB_ID >> started.txt; echo partial > {output}; "
            "sleep {resources.delay}; echo finished > {output}"
"""


def test_cancelled_job_is_retried(slurm_cluster, tmp_path):
    wf = write_workflow(tmp_path / "wf", CANCEL_WORKFLOW)
    started = wf / "started.txt"
    log = tmp_path / "snakemake.out"
    with SlurmMonitor(wf) as mon, open(log, "w") as fh:
        proc = subprocess.Popen(
            [SNAKEMAKE, "--profile", str(PROFILE)],
            cwd=wf, env=_env(), stdout=fh, stderr=subprocess.STDOUT, text=True,
        )
        try:
            # hang guards only: the first attempt starts within seconds on an idle cluster
            deadline = time.monotonic() + STALL_SECONDS
            while not (started.exists() and started.read_text().strip()):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "first attempt never started:\n" + log.read_text()
                time.sleep(0.5)
            first = started.read_text().split()[0]
            assert mon.state(first) == "RUNNING"
            subprocess.run(["scancel", first], check=True, timeout=20)
            rc = proc.wait(timeout=LIMIT_SECONDS)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log.read_text()
    assert rc == 0, tail(out)
    assert (wf / "results/slow.txt").read_text() == "finished\n"

    attempts = started.read_text().split()
    assert len(attempts) == 2 and attempts[0] == first, attempts
    assert mon.state(first) == "CANCELLED", mon.jobs
    assert mon.state(attempts[1]) == "COMPLETED", mon.jobs
    assert f"SLURM-job '{first}' failed, SLURM status is: 'CANCELLED'" in out
    assert slurm_log_ids(wf) == {"rule_slow": set(attempts)}


# ------------------------------------------------------------------- the real study


def _copy_repo(dest: Path) -> Path:
    """Copy the repository's files (tracked, plus untracked ones git does not ignore)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target, follow_symlinks=False)
    return dest


class TrainingCanceller(threading.Thread):
    """scancels a training job of the study mid-run: after an epoch's checkpoint is written
    and before the model is, while Slurm says RUNNING. A cancel that lands too late (the job
    completed, or had already finished training and removed its checkpoint) does not count:
    the next training job is tried."""

    def __init__(self, root: Path, monitor: SlurmMonitor):
        super().__init__(daemon=True)
        self.root, self.monitor = root, monitor
        # The cancel that counts: Slurm ID, model folder, job comment; its retry must resume.
        self.cancelled: tuple[str, Path, str] | None = None
        # Every job this thread cancelled (each must have been retried).
        self.all_cancelled: dict[str, str] = {}
        self._tried: set[str] = set()
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=90)

    def run(self) -> None:
        while self.cancelled is None and not self._halt.wait(0.1):
            for ckpt in sorted((self.root / "results/models").glob("*/*/fold-*/checkpoint/last.pt")):
                model_dir = ckpt.parent.parent
                if (model_dir / "model.pt").exists():
                    continue
                wildcards = "_".join([*model_dir.parts[-3:-1], model_dir.name.removeprefix("fold-")])
                comment = f"rule_train_wildcards_{wildcards}"
                self.monitor.poll()
                running = [j for j, info in list(self.monitor.jobs.items())
                           if info["comment"] == comment and info["state"] == "RUNNING" and j not in self._tried]
                if not running:
                    continue
                jobid = running[0]
                self._tried.add(jobid)
                subprocess.run(["scancel", jobid], capture_output=True, timeout=20)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and self.monitor.state(jobid) in ("RUNNING", "COMPLETING"):
                    time.sleep(0.2)
                if self.monitor.state(jobid) != "CANCELLED":
                    continue  # it completed first
                self.all_cancelled[jobid] = comment
                if ckpt.exists():  # still there once the job is dead: the retry resumes from it
                    self.cancelled = (jobid, model_dir, comment)
                    return


def _first_failed_job_log(out: str, lines: int = 25) -> str:
    """The end of the first failed Slurm job's own log that Snakemake names: the job's real
    error (e.g. a traceback in its inner Snakemake) is there, not in the outer log."""
    for match in re.finditer(r"(/\S+/\.snakemake/slurm_logs/\S+?\.log)", out):
        path = Path(match.group(1))
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            return f"\n--- end of {path} ---\n" + "\n".join(text)
    return ""


def _tables(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted((root / "results").rglob("*.tsv"))}


@pytest.mark.slow
def test_ci_study_through_slurm_equals_local(slurm_cluster, tmp_path, request):
    if not (REPO / "Snakefile").exists():
        pytest.skip("no Snakefile in the repository root yet: the workflow is not written")
    if not (REPO / "config" / "ci.yaml").exists():
        pytest.skip("config/ci.yaml does not exist")

    cluster = _copy_repo(tmp_path / "slurm")
    reuse = os.environ.get("TISSUEFATE_E2E_LOCAL_ROOT", "").strip()
    if reuse:
        # CI already ran `snakemake --cores 2 --configfile config/ci.yaml` on this
        # commit in that directory: compare with its results instead of running it again
        local = Path(reuse).resolve()
        assert (local / "results").is_dir(), f"TISSUEFATE_E2E_LOCAL_ROOT={reuse} has no results/"
    else:
        # The local run of the CI study, shared with tests/test_workflow.py (one run a session).
        local = request.getfixturevalue("ci_run")

    # exactly as the README shows, from the repository root (the cohort simulated inside the
    # workflow; the local run read the same cohort as real data); one training job is
    # scancel'ed mid-run and must be retried, resume from its checkpoint and give the same tables
    with SlurmMonitor(cluster, interval=2.0) as mon:
        canceller = TrainingCanceller(cluster, mon)
        canceller.start()
        try:
            proc = run_snakemake(["--profile", "profiles/slurm", "--configfile", "config/ci.yaml"],
                                 cwd=cluster, env=_env({"PYTHONPATH": str(cluster / "src")}))
        finally:
            canceller.stop()
    out = proc.stdout
    assert proc.returncode == 0, "Slurm run failed:\n" + tail(out) + _first_failed_job_log(out)

    # the cancelled training job: CANCELLED in Slurm, retried as a new Slurm job that resumed
    # after the first epoch and completed
    assert canceller.cancelled is not None, "no training job could be cancelled mid-run:\n" + tail(out)
    for cancelled, comment in canceller.all_cancelled.items():
        assert mon.state(cancelled) == "CANCELLED"
        assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in out
        retried = [j for j, info in mon.jobs.items()
                   if info["comment"] == comment and j not in canceller.all_cancelled]
        assert [mon.state(j) for j in retried] == ["COMPLETED"], mon.jobs
    cancelled, model_dir, comment = canceller.cancelled
    approach, target, fold = model_dir.parts[-3], model_dir.parts[-2], model_dir.name
    train_log = (cluster / "results/logs/training" / f"{approach}_{target}_{fold}.log").read_text()
    assert re.search(r"resuming after epoch \d+ of", train_log), train_log

    # every non-local job was a real Slurm job that completed
    jobs = submitted(out)
    assert jobs, "no job was submitted to Slurm:\n" + tail(out)
    log_ids = set().union(*slurm_log_ids(cluster).values())
    not_completed = {}
    for j in jobs:
        assert Path(j["log"]).is_file(), j
        assert j["id"] in log_ids, j
        state = mon.state(j["id"])
        if state != "COMPLETED" and j["id"] not in canceller.all_cancelled:
            not_completed[j["id"]] = (j["log"], state)
    assert not not_completed, f"Slurm jobs not COMPLETED: {not_completed}"

    # the result tables are byte for byte those of the local run
    local_tables, cluster_tables = _tables(local), _tables(cluster)
    assert local_tables, "the local run wrote no results/**/*.tsv"
    assert sorted(cluster_tables) == sorted(local_tables)
    differing = [name for name in local_tables
                 if not filecmp.cmp(local_tables[name], cluster_tables[name], shallow=False)]
    if differing:
        first = differing[0]
        a = local_tables[first].read_text().splitlines()
        b = cluster_tables[first].read_text().splitlines()
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        excerpt = "\n".join([f"{first} line {i + 1}:",
                              f"  local: {a[i] if i < len(a) else '<end>'}",
                              f"  slurm: {b[i] if i < len(b) else '<end>'}"])
        pytest.fail(f"{len(differing)} tables differ between the local and the Slurm run: "
                    f"{differing}\n{excerpt}\n(a workflow that is not reproducible run to run "
                    "fails here too: compare two local runs first)")
