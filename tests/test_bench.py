"""scripts/bench keeps working: a tiny run (`--quick --json`) reports every section in numbers.

The benchmark is not a pass/fail test of supervise's speed (machines are noisy):
only that it runs, measures each section and cleans up (the autouse leak check).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "_bench.py"

# Figures that must be numbers in every run; the other tools' rows may be empty
# only if bubblewrap or GNU parallel could not be installed.
REQUIRED = {
    "batch": ["supervise_jobs_per_s", "supervise_startup_s", "xargs_unshare_jobs_per_s",
              "xargs_true_jobs_per_s", "ratio_supervise_xargs_unshare",
              "supervise_unconfined_jobs_per_s", "containment_share_percent"],
    "single": ["supervise_median_s", "unshare_median_s", "python_import_trio_median_s",
               "ratio_supervise_import_trio", "supervise_unconfined_median_s",
               "seccomp_compile_ms", "seccomp_install_us", "containment_pid1_total_us",
               "containment_pid1_seccomp_us", "containment_pid1_keyring_us",
               "containment_cgroups_us", "containment_cgroups_without_leaf_us",
               "containment_total_us"],
    "scale": ["start_all_s", "start_one_s", "supervisor_rss_bytes", "spawner_rss_bytes",
              "own_rss_bytes", "growth_per_container_bytes", "idle_cpu_percent",
              "containers_running", "python_per_container"],
    "accuracy": ["cpu_share", "peak_bytes", "baseline_peak_bytes", "peak_minus_baseline_bytes"],
}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_the_wrapper_runs_the_benchmark_with_the_projects_interpreter() -> None:
    if not os.access(ROOT / ".venv" / "bin" / "python", os.X_OK):
        pytest.skip("no .venv (scripts/bootstrap makes it)")
    done = subprocess.run([ROOT / "scripts" / "bench", "--help"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--json" in done.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("root_only")
def test_a_quick_run_reports_every_section() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    # ~20 s here; the rest of the budget is for apt-get if bubblewrap or parallel is missing.
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--json"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["notes"] == [] or all("clash" in n for n in report["notes"]), report["notes"]
    metrics = report["metrics"]
    assert set(metrics) == set(REQUIRED)
    for section, names in REQUIRED.items():
        for name in names:
            assert is_number(metrics[section].get(name)), (section, name, metrics[section])
        for name, value in metrics[section].items():
            values = value if isinstance(value, list) else [value]
            assert all(v is None or is_number(v) for v in values), (section, name, value)
    assert metrics["scale"]["containers_running"] == 5
    assert metrics["scale"]["python_per_container"] == 0
    assert 0 < metrics["accuracy"]["cpu_share"] < 1
    rows = report["rows"]
    assert {row["section"] for row in rows} == set(REQUIRED)
    assert all(row["value"] is None or is_number(row["value"]) for row in rows)
