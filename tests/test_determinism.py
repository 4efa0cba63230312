"""Same seed, same machine, same thread count: the same run (real `nas train` subprocesses)."""

import json
import os
import subprocess
import sys

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]


def _train(tmp_path, *args):
    env = {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*NAS, "train", *args, "--json"], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_train_with_the_same_seed_gives_the_same_metrics(tmp_path):
    args = ["--arch", "lenet5", "--dataset", "digits", "--epochs", "2", "--seed", "0"]
    first, second = _train(tmp_path, *args), _train(tmp_path, *args)
    for key in ("val_accuracy", "val_loss", "train_loss"):
        assert first[key] == second[key], key


def test_a_cell_network_with_cutout_and_drop_path_reproduces(tmp_path):
    args = ["--arch", "enas", "--dataset", "digits", "--epochs", "1", "--cells", "1",
            "--channels", "4", "--cutout", "2", "--drop-path", "0.2", "--seed", "7"]
    first, second = _train(tmp_path, *args), _train(tmp_path, *args)
    assert (first["val_accuracy"], first["val_loss"]) == (second["val_accuracy"],
                                                           second["val_loss"])


def test_different_seeds_give_different_runs(tmp_path):
    base = ["--arch", "lenet5", "--dataset", "digits", "--epochs", "1"]
    first = _train(tmp_path, *base, "--seed", "0")
    second = _train(tmp_path, *base, "--seed", str(2**32))
    assert first["val_loss"] != second["val_loss"]
