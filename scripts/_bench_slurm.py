"""`scripts/bench --slurm`: a batch of short jobs over Slurm shards, against the same
batch run locally and against a plain Slurm array of one task per job, in one run.

On a throw-away one-host Slurm (../shared/slurm-one-host, its packages installed with
apt-get if missing; SLURMTEST_CPUS=8). Rows:

- the local batch: `supervise batch FILE -j 8` (N x true);
- the sharded one: `supervise batch FILE --slurm --shards 4 -j 2` (the same 8 at once);
- Slurm's fixed cost: a 4-task array of `true`, submitted to done (what any sharded
  run pays before and after its shards);

each the median of ROUNDS interleaved rounds (each Slurm array submitted after a
local run);
- a plain array, one task per job: 100 tasks of `true` (a whole 1000 would take
  minutes), and the same extrapolated to N.

Targets (issue 14): sharded <= 1.2 x (local + fixed); plain (extrapolated) many times
the sharded run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ONE_HOST = Path(os.environ.get("SUPERVISE_SLURM_ONE_HOST")
                or ROOT.parent / "shared" / "slurm-one-host")
PACKAGES = ["slurm-wlm", "slurmctld", "slurmd", "slurm-client", "munge"]
PLAIN_TASKS = 100
ROUNDS = 5


class SlurmBenchError(Exception):
    pass


def _ensure_slurm(say: Callable[[str], None]) -> None:
    if shutil.which("sbatch") and shutil.which("slurmctld"):
        return
    say(f"installing {' '.join(PACKAGES)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            raise SlurmBenchError("Slurm could not be installed")


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SlurmBenchError(f"{' '.join(argv[:6])}...: exit {done.returncode}: "
                              f"{done.stderr.strip()[-300:]}")
    return elapsed


def _array(tasks: int, env: dict[str, str]) -> float:
    """Wall seconds of a plain array of tasks x `true`, submitted to done."""
    t0 = time.perf_counter()
    submitted = subprocess.run(["sbatch", "--parsable", f"--array=0-{tasks - 1}",
                                "--output=/dev/null", "--wrap=true"], capture_output=True,
                               text=True, env=env, check=True)
    job = submitted.stdout.strip().split(";")[0]
    while subprocess.run(["squeue", "-h", "-j", job, "-o", "%i"], capture_output=True,
                         text=True, env=env).stdout.strip():
        time.sleep(0.1)
    return time.perf_counter() - t0


def measure(jobs: int, python: str, say: Callable[[str], None]) -> dict[str, Any]:
    """{"local_s", "sharded_s", "fixed_s", "plain_s" (PLAIN_TASKS), "plain_tasks"};
    raises SlurmBenchError."""
    if not ONE_HOST.is_dir():
        raise SlurmBenchError(f"{ONE_HOST} not found (set SUPERVISE_SLURM_ONE_HOST)")
    _ensure_slurm(say)
    directory = Path(tempfile.mkdtemp(prefix="supervise-bench-slurm-"))
    directory.chmod(0o755)  # munged wants every directory above its socket open to all
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(SLURMTEST_DIR=str(directory), SLURMTEST_CPUS="8")
    up = subprocess.run(["bash", str(ONE_HOST / "slurm-up.sh")], capture_output=True,
                        text=True, env=env)
    env["SLURM_CONF"] = str(directory / "etc" / "slurm.conf")
    try:
        if up.returncode != 0:
            raise SlurmBenchError(f"slurm-up.sh: {up.stderr.strip()[-300:]}")
        jobs_file = directory / "jobs.txt"
        jobs_file.write_text("true\n" * jobs)
        batch = [python, "-m", "supervisor", "batch", "--no-live", str(jobs_file)]
        say(f"slurm: {jobs} x true locally (-j 8), over 4 shards (-j 2 each), Slurm's fixed "
            f"cost, a plain array of {PLAIN_TASKS}")
        # Interleaved rounds, medians. Slurm starts an array at its next scheduling
        # pass: up to a second after it is submitted into a quiet controller, at once
        # right after another job has ended. So each array (the sharded run's, the
        # fixed cost's) is submitted after a local run, as quiet a controller as the
        # other's: a wait of the same odds.
        local, sharded, fixed = [], [], []
        for _ in range(ROUNDS):
            local.append(_wall([*batch, "-j", "8"], env))
            sharded.append(_wall([*batch, "-j", "2", "--slurm", "--shards", "4",
                                  "--results", str(directory / "results.jsonl")], env))
            local.append(_wall([*batch, "-j", "8"], env))
            fixed.append(_array(4, env))
        plain = _array(PLAIN_TASKS, env)
    finally:
        subprocess.run(["bash", str(ONE_HOST / "slurm-down.sh")], capture_output=True, env=env)
        shutil.rmtree(directory, ignore_errors=True)
    return {"local_s": statistics.median(local), "sharded_s": statistics.median(sharded),
            "fixed_s": statistics.median(fixed), "plain_s": plain, "plain_tasks": PLAIN_TASKS,
            "rounds": {"local_s": local, "sharded_s": sharded, "fixed_s": fixed}}


if __name__ == "__main__":
    print(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, sys.executable,
                  lambda m: print(m, file=sys.stderr)))
