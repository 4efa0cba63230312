"""Thread counts: NAS_THREADS, then OMP_NUM_THREADS, then the CPUs the process may use
(affinity, cgroup quota); OpenMP threads wait passively unless the user chose a policy."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from nas.threads import available_cpus, cgroup_cpu_quota, prefer_passive_openmp, thread_count

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
TRAIN = ["train", "--arch", "lenet5", "--dataset", "synthetic", "--epochs", "1", "--json"]


def nas_train(tmp_path, prefix=(), **variables):
    env = {key: value for key, value in os.environ.items()
           if key not in ("NAS_THREADS", "OMP_NUM_THREADS")}
    env |= {"NAS_HOME": str(tmp_path), **variables}
    return subprocess.run([*prefix, *NAS, *TRAIN], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize(("variables", "threads"), [
    ({"OMP_NUM_THREADS": "1"}, 1),
    ({"OMP_NUM_THREADS": "1", "NAS_THREADS": "2"}, 2),
    ({"NAS_THREADS": "1"}, 1),
])
def test_train_uses_the_thread_count_asked(tmp_path, variables, threads):
    result = nas_train(tmp_path, **variables)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["threads"] == threads


def test_without_settings_train_uses_the_cpus_it_may_run_on(tmp_path):
    assert json.loads(nas_train(tmp_path).stdout)["threads"] == available_cpus()


@pytest.mark.skipif(shutil.which("taskset") is None or os.cpu_count() < 2,
                    reason="needs taskset and two CPUs")
def test_a_process_pinned_to_one_cpu_uses_one_thread(tmp_path):
    result = nas_train(tmp_path, prefix=("taskset", "-c", "0"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["threads"] == 1


@pytest.mark.parametrize("value", ["many", "0", "-2", "100000", "99999999999999999999999"])
def test_a_bad_thread_setting_is_one_line(tmp_path, value):
    result = nas_train(tmp_path, NAS_THREADS=value)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "NAS_THREADS" in lines[0]


def test_cgroup_quota_caps_the_cpus(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_quota(v1) == 0.5
    assert cgroup_cpu_quota(tmp_path / "missing") is None


def test_openmp_waits_passively_unless_a_policy_is_set(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_cli_sets_the_policy_before_torch_loads():
    code = ("import os, sys; os.environ.pop('OMP_WAIT_POLICY', None); import nas.cli; "
            "print(os.environ['OMP_WAIT_POLICY'])")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
    assert probe.stdout.strip() == "PASSIVE"
    order = ("import sys, nas.threads; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", order], capture_output=True, text=True,
                          timeout=120).stdout.strip() == "False"


def test_thread_count_order(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    monkeypatch.delenv("NAS_THREADS", raising=False)
    assert thread_count() == 3
    monkeypatch.setenv("NAS_THREADS", "1")
    assert thread_count() == 1
