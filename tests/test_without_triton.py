"""A `nas` process without a GPU does not load triton (nas.without_triton).

Each probe runs the `nas` command's entry in a fresh process, a small ENAS search (its
supernet's optimizer imports `torch._dynamo`, which imports triton where it is installed; its
derived cells' multiply-adds are counted by `torch.utils.flop_counter`), and then reports the
libraries mapped into that process.
"""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

PROBE = """
import json, sys
from nas.cli import main
sys.argv = ["nas", "search", "-c", sys.argv[1], "--json"]
try:
    main()
except SystemExit as stop:
    assert not stop.code, stop.code
with open("/proc/self/maps") as maps:
    mapped = maps.read()
print(json.dumps({"libtriton_mapped": "libtriton" in mapped,
                  "triton_module": sys.modules.get("triton") is not None}))
"""
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed"),
    pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device keeps triton"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps"),
]


def _search(env, tmp_path, **environment: str) -> tuple[dict, dict, str]:
    config = tmp_path / "search.yaml"
    config.write_text(
        "evaluator: {name: enas, batch_size: 32, warmup_epochs: 0, derive_samples: 2, "
        "derive_top: 1}\n"
        "dataset: {name: synthetic, limit: 64}\nnetwork: {cells: 1, channels: 4}\n"
        "space: {blocks: 2}\nbudget: {architectures: 4}\n"
    )
    result = subprocess.run([sys.executable, "-c", PROBE, str(config)], capture_output=True,
                            text=True, env={**env, **environment}, timeout=600)
    assert result.returncode == 0, result.stderr
    *output, probe = result.stdout.strip().splitlines()
    return json.loads(output[-1]), json.loads(probe), result.stderr


def test_a_search_without_a_gpu_never_loads_triton_and_still_counts_multiply_adds(env, tmp_path):
    summary, probe, stderr = _search(env, tmp_path)
    assert probe == {"libtriton_mapped": False, "triton_module": False}
    assert summary["best_multiply_adds"] > 0 and summary["best_params"] > 0
    assert "triton" not in stderr  # flop_counter's warning that it is missing is dropped


def test_nas_keep_triton_leaves_the_import_alone(env, tmp_path):
    summary, probe, _ = _search(env, tmp_path, NAS_KEEP_TRITON="1")
    assert probe == {"libtriton_mapped": True, "triton_module": True}
    assert summary["best_multiply_adds"] > 0
