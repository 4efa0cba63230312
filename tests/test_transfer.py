"""NASNet-style transfer: presets sized like NASNet-A, a small transfer beats chance on the
hymenoptera ImageFolder and is recorded linked to its source, and can then be exported."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.data import load_dataset
from nas.store import ArchitectureState, SearchStatus, Store
from nas.train import TrainConfig
from nas.transfer import PRESETS, TRANSFER_ROLE, measure, record_transfer, transfer
from searchspace.network import CellNetwork
from searchspace.references import ENAS_MICRO, NASNET_A

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"
needs_hymenoptera = pytest.mark.skipif(not HYMENOPTERA.is_dir(),
                                       reason=f"no hymenoptera data at {HYMENOPTERA}")


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_sized_like_nasnet_a(name):
    preset = PRESETS[name]
    params, flops = measure(NASNET_A, num_classes=1000, input_size=224, cells=preset.cells,
                            channels=preset.channels)
    assert preset.params_range[0] <= params <= preset.params_range[1]
    assert preset.flops_range_224[0] <= flops <= preset.flops_range_224[1]
    # within 15% of the published NASNet-A parameters, and of its FLOPs at its input size
    assert abs(params / preset.published_params - 1) < 0.15
    _, native_flops = measure(NASNET_A, num_classes=1000, input_size=preset.published_input_size,
                              cells=preset.cells, channels=preset.channels)
    assert abs(native_flops / preset.published_flops - 1) < 0.15


def test_mobile_preset_is_about_5m_parameters_and_600m_multiply_adds():
    mobile = PRESETS["mobile"]
    params, flops = measure(NASNET_A, num_classes=1000, input_size=224, cells=mobile.cells,
                            channels=mobile.channels)
    assert 4.5e6 <= params <= 6.5e6 and 450e6 <= flops <= 750e6


@needs_hymenoptera
def test_small_transfer_beats_chance_and_is_linked_to_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    data = load_dataset("imagefolder", HYMENOPTERA, input_size=48, seed=0)
    assert data.info.num_classes == 2
    config = TrainConfig(epochs=3, batch_size=8, learning_rate=0.01, seed=0)
    outcome = transfer(NASNET_A, data, cells=1, channels=8, config=config)
    assert outcome.accuracy > 0.5, [epoch.val_accuracy for epoch in outcome.result.history]
    assert outcome.spec.resolved_stem == "cifar"  # 48 px is below the ImageNet stem's 128
    with Store("sqlite://") as store:
        search = store.create_search("proxy", {}, 0)
        (source_id,) = store.add_architectures(search.id, 3, [NASNET_A], "standalone")
        store.finish_architecture(source_id, state=ArchitectureState.COMPLETE, reward=0.9)
        source = store.get_architecture(source_id)
        record = record_transfer(store, outcome, source=source,
                                 dataset={"name": "imagefolder"}, epochs=3)
        assert record.role == TRANSFER_ROLE and record.parent_id == source_id
        assert record.search_id == search.id and record.state is ArchitectureState.COMPLETE
        assert record.accuracy == pytest.approx(outcome.accuracy)
        assert record.params == outcome.params and record.flops == outcome.flops
        weights = Path(record.weights_path)
        assert weights.is_file() and weights.is_relative_to(tmp_path / "home")


def test_large_input_sizes_use_the_imagenet_stem():
    params_small, _ = measure(ENAS_MICRO, num_classes=2, input_size=64, cells=1, channels=8)
    network = CellNetwork(ENAS_MICRO, num_classes=2, cells=1, channels=8, stem="imagenet")
    params_large, _ = measure(ENAS_MICRO, num_classes=2, input_size=128, cells=1, channels=8)
    assert params_large == sum(p.numel() for p in network.parameters()) != params_small


# --- the command ------------------------------------------------------------------------------


def nas(env, *args):
    return subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=300)


@needs_hymenoptera
def test_transfer_a_genotype_file_then_export_it(env, tmp_path):
    genotype_file = tmp_path / "cell.json"
    genotype_file.write_text(ENAS_MICRO.to_json(indent=2))
    result = nas(env, "transfer", "--genotype", str(genotype_file), "--data-dir",
                 str(HYMENOPTERA), "--input-size", "32", "--cells", "1", "--channels", "4",
                 "--epochs", "1", "--batch-size", "8", "--limit", "60", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["parent_id"] is None
    # the trained network's size: ENAS's cell, 1 cell and 4 channels, 2 classes at 32 px
    params, flops = measure(ENAS_MICRO, num_classes=2, input_size=32, cells=1, channels=4)
    assert (summary["params"], summary["flops"]) == (params, flops)
    assert summary["published_params"] == 5_300_000 and summary["published_flops"] == 564e6
    with Store(f"sqlite:///{Path(env['NAS_HOME']) / 'nas.db'}") as store:
        search = store.get_search(summary["search_id"])
        assert search.name == "transfer" and search.status is SearchStatus.FINISHED
        record = store.get_architecture(summary["architecture_id"])
        assert record.role == TRANSFER_ROLE and record.genotype == ENAS_MICRO

    # the transferred network exports like any other, with its settings and trained weights
    exported = nas(env, "export", "best", "-o", str(tmp_path / "transferred.py"), "--json")
    assert exported.returncode == 0, exported.stderr
    details = json.loads(exported.stdout)
    assert details["architecture_id"] == summary["architecture_id"]
    assert details["weights"] == summary["weights"]
    assert details["network"]["num_classes"] == 2 and details["network"]["input_size"] == 32
    spec = importlib.util.spec_from_file_location("transferred", tmp_path / "transferred.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = CellNetwork(ENAS_MICRO, num_classes=2, cells=1, channels=4)
    reference.load_state_dict(torch.load(summary["weights"], weights_only=True))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module.build_model().eval()(images),
                                   reference.eval()(images), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --search ID or --genotype FILE"),
        (["--search", "abc", "--genotype", "cell.json"], "exactly one of"),
        (["--search", "nosuchsearch"], "unknown search id 'nosuchsearch'"),
        (["--genotype", "/nonexistent/cell.json"], "/nonexistent/cell.json does not exist"),
        (["--genotype", "cell.json", "--preset", "huge"], "unknown preset 'huge'"),
        (["--genotype", "cell.json", "--gpus", "1"], "--cpus and --gpus say what a Ray worker"),
        (["--genotype", "cell.json", "--rank", "2"],  # the rank was silently ignored
         "--rank picks one of a search's architectures: give it with --search"),
        (["--genotype", "cell.json", "--dataset", "digits"], "dataset digits reads no files"),
    ],
)
def test_transfer_errors_exit_2_with_one_line(env, args, message):
    result = nas(env, "transfer", *args, "--data-dir", str(HYMENOPTERA))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@needs_hymenoptera
def test_transfer_from_a_search_is_linked_and_ranked_apart(env, tmp_path):
    with Store(f"sqlite:///{Path(env['NAS_HOME']) / 'nas.db'}") as store:
        search = store.create_search("proxy", {"dataset": {"name": "digits"},
                                               "network": {"cells": 1, "channels": 4}}, 0)
        store.set_status(search.id, SearchStatus.RUNNING)
        ids = store.add_architectures(search.id, 0, [NASNET_A, ENAS_MICRO], "standalone")
        for architecture_id, reward in zip(ids, [0.2, 0.1], strict=True):
            store.finish_architecture(architecture_id, state=ArchitectureState.COMPLETE,
                                      reward=reward)
        store.set_status(search.id, SearchStatus.FINISHED)
    result = nas(env, "transfer", "--search", search.id, "--rank", "2", "--data-dir",
                 str(HYMENOPTERA), "--input-size", "32", "--cells", "1", "--channels", "4",
                 "--epochs", "1", "--batch-size", "8", "--limit", "60", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["search_id"] == search.id and summary["parent_id"] == ids[1]

    def exported(*args):
        out = nas(env, "export", "best", "--search", search.id, *args, "-o",
                  str(tmp_path / "net.py"), "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    # the search's own ranking ignores the transfer (scored on another dataset) ...
    assert [exported("--rank", str(k))["architecture_id"] for k in (1, 2)] == ids
    # ... which is exported on request, with its own settings and weights
    details = exported("--transferred")
    assert details["architecture_id"] == summary["architecture_id"]
    assert details["network"]["num_classes"] == 2 and details["weights"] == summary["weights"]
