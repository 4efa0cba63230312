"""The `nas` command keeps freed activation memory for the next step (nas.allocator).

Each probe is a fresh Python process that allocates and frees 96 MiB of tensors 20 times,
as a training step does with its activations, and counts the page faults of those steps.
"""

import os
import subprocess
import sys

import pytest

from nas.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD, keep_freed_memory

PROBE = """
import os, resource, sys
if sys.argv[1] == "nas":
    import nas.cli  # what the `nas` command runs first
import torch
torch.set_num_threads(1)
def step():
    activations = [torch.empty(1 << 20).fill_(1.0) for _ in range(24)]  # 24 x 4 MiB
    del activations
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(os.environ.get("MALLOC_TRIM_THRESHOLD_", ""), os.environ.get("MALLOC_MMAP_THRESHOLD_", ""))
"""
PAGES_PER_STEP = 24 * (4 << 20) // 4096
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")


def _probe(entry: str, **environment: str) -> tuple[int, list[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", PROBE, entry], env={**env, **environment},
                            capture_output=True, text=True, check=True, timeout=120)
    faults, thresholds = result.stdout.splitlines()
    return int(faults), thresholds.split(" ")


def test_the_nas_command_keeps_freed_memory_and_hands_its_setting_to_child_processes():
    plain, _ = _probe("python")
    kept, thresholds = _probe("nas")
    # with glibc's defaults the steps fault on much of their memory again; kept: almost none
    assert kept < PAGES_PER_STEP < plain, (kept, plain)
    assert thresholds == [str(TRIM_THRESHOLD), str(MMAP_THRESHOLD)]


def test_an_empty_variable_counts_as_unset():
    """glibc reads an empty MALLOC_TRIM_THRESHOLD_ as 0 and returns memory on every free."""
    kept, thresholds = _probe("nas", MALLOC_TRIM_THRESHOLD_="")
    assert kept < PAGES_PER_STEP
    assert thresholds == [str(TRIM_THRESHOLD), str(MMAP_THRESHOLD)]


@pytest.mark.parametrize("choice", [{"MALLOC_TRIM_THRESHOLD_": "131072"},
                                    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}])
def test_a_users_allocator_setting_is_kept(choice):
    faults, thresholds = _probe("nas", **choice)
    assert faults > PAGES_PER_STEP  # their setting (trim at 128 KiB), not ours
    assert thresholds == [choice.get("MALLOC_TRIM_THRESHOLD_", ""), ""]


def test_nothing_is_set_twice_in_one_process(monkeypatch):
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD",
                 "GLIBC_TUNABLES"):
        monkeypatch.setenv(name, "")  # recorded, so the test's process gets its value back
        monkeypatch.delenv(name)
    assert keep_freed_memory() is True
    assert keep_freed_memory() is False  # the variables are set now: they are the choice
