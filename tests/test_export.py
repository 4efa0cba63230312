"""`nas.export` and `nas export best`: the standalone module runs where our packages are absent
and gives the in-project network's outputs; TorchScript (and ONNX when installed) match too."""

import importlib.util
import inspect
import json
import os
import random
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from nas.export import ExportError, ExportSpec, export, python_source
from nas.store import ArchitectureState, SearchStatus, Store
from searchspace import network as network_module
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork
from searchspace.ops import OPS, FactorizedReduce, ReLUConvBN, SeparableConv, concat_channels
from searchspace.references import ENAS_MICRO, NASNET_A
from searchspace.spaces import SearchSpace

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]

# Every op, each once on a cell input (stride 2 in the reduction cell) and once on a block output.
ALL_OPS = Genotype(
    normal=[(i % 2, op, i + 1, op) for i, op in enumerate(OPS)],
    reduction=[(i % 2, op, i + 1, op) for i, op in enumerate(OPS)],
)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fresh weights and non-trivial batch-norm statistics and affines (so that eval-mode outputs
    depend on every tensor), keeping activations of order one."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + 0.5 * noise.abs())
            elif tensor.ndim == 1:  # running means, BN affines, biases
                tensor.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            else:
                tensor.add_(0.1 * tensor.std() * noise)
    return model


def random_genotypes(count: int) -> list[Genotype]:
    space = SearchSpace(ops=tuple(OPS), blocks=4)
    return [space.sample(random.Random(seed)) for seed in range(count)]


CASES = [
    ("nasnet_a", NASNET_A, 16),
    ("enas_imagenet_stem", ENAS_MICRO, 128),
    ("all_ops", ALL_OPS, 16),
    *[(f"random_{i}", genotype, 12) for i, genotype in enumerate(random_genotypes(3))],
]


def _standalone_python(cwd: Path, code: str) -> subprocess.CompletedProcess:
    """A fresh isolated Python (`-I`: no PYTHON* variables, no user site, not even the script's
    folder on the path) where torch imports but our packages do not: no site processing either
    (`-S`, so no editable-install hook), only site-packages put on the path, run elsewhere."""
    env = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}
    code = f"import sys\nsys.path.append({SITE_PACKAGES!r})\n{code}"
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_standalone_module_matches_cell_network(tmp_path):
    expected, jobs = {}, []
    for index, (name, genotype, size) in enumerate(CASES):
        spec = ExportSpec(genotype, num_classes=5, cells=1, channels=8, in_channels=3,
                          input_size=size, title=name)
        model = randomize(spec.build(), seed=index)
        weights = tmp_path / f"{name}-weights.pt"
        torch.save(model.state_dict(), weights)
        folder = tmp_path / name
        export(spec, folder / "model.py", "py", weights)
        images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(index))
        torch.save(images, folder / "images.pt")
        with torch.no_grad():
            expected[name] = model.eval()(images)
        jobs.append(name)
    code = f"""
import importlib.util, sys, torch
try:
    import searchspace
    sys.exit("searchspace is importable")
except ImportError:
    pass
try:
    import nas
    sys.exit("nas is importable")
except ImportError:
    pass
for name in {jobs!r}:
    spec = importlib.util.spec_from_file_location(name, f"{tmp_path}/{{name}}/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model().eval()  # loads the weights exported beside it
    with torch.no_grad():
        logits = model(torch.load(f"{tmp_path}/{{name}}/images.pt"))
    torch.save(logits, f"{tmp_path}/{{name}}/logits.pt")
"""
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = _standalone_python(work, code)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in jobs:
        logits = torch.load(tmp_path / name / "logits.pt")
        torch.testing.assert_close(logits, expected[name], atol=1e-5, rtol=0)


def test_standalone_module_loads_our_state_dicts_with_load_weights(tmp_path):
    spec = ExportSpec(NASNET_A, num_classes=3, cells=1, channels=6, in_channels=1, input_size=8)
    path = tmp_path / "net.py"
    export(spec, path, "py")
    # an auxiliary head's weights (trained with auxiliary=True) are skipped
    trained = randomize(CellNetwork(NASNET_A, num_classes=3, cells=1, channels=6,
                                    in_channels=1, auxiliary=True))
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    module_spec = importlib.util.spec_from_file_location("exported_net", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert module.WEIGHTS is None
    model = module.load_weights(module.build_model(), tmp_path / "trained.pt").eval()
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(images), trained.eval()(images), atol=1e-5, rtol=0)
    assert module.build_model(num_classes=7)(images).shape == (4, 7)


def test_module_holds_only_the_ops_used_and_reads_like_code():
    source = python_source(ExportSpec(NASNET_A, cells=1, channels=8, title="a long title " * 9))
    compile(source, "model.py", "exec")
    assert "searchspace" not in source and "from nas" not in source
    # the ops, the stem and the stage plan are the project's own definitions, copied
    for definition in (SeparableConv, FactorizedReduce, ReLUConvBN, concat_channels,
                       network_module.cifar_stem, network_module.stage_plan):
        assert inspect.getsource(definition).strip() in source
    assert "\ndef sep_conv_7x7(channels: int, stride: int)" in source
    assert "@register_op" not in source and "OPS" not in source
    for unused in ("InvertedResidual", "InceptionBranches", "FactorizedConv", "SqueezeExcitation"):
        assert unused not in source
    # the wiring is explicit code, one line per block, and the loose ends named
    assert "b0 = self.ops[0](s1) + self.ops[1](s0)" in source
    assert "return concat_channels([b0, b1, b2, b3, b4])" in source
    assert "genotype" not in source.split("class NormalCell")[1].lower()
    assert all(len(line) <= 100 for line in source.splitlines())


def test_torchscript_matches(tmp_path):
    spec = ExportSpec(ENAS_MICRO, num_classes=4, cells=1, channels=6, input_size=16)
    model = randomize(spec.build())
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (path,) = export(spec, tmp_path / "model.ts", "torchscript", tmp_path / "weights.pt")
    loaded = torch.jit.load(str(path))
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model.eval()(images), atol=1e-5, rtol=0)


def test_onnx_matches_when_onnxruntime_is_installed(tmp_path):
    if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript")):
        with pytest.raises(ExportError, match="needs the onnx.*pip install onnx"):
            export(ExportSpec(NASNET_A, cells=1, channels=4), tmp_path / "m.onnx", "onnx")
        pytest.skip("onnx is not installed (the clear error is checked)")
    onnxruntime = pytest.importorskip("onnxruntime")
    spec = ExportSpec(NASNET_A, num_classes=4, cells=1, channels=6, input_size=16)
    model = randomize(spec.build())
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (path,) = export(spec, tmp_path / "model.onnx", "onnx", tmp_path / "weights.pt")
    assert sorted(found.name for found in tmp_path.iterdir()) == ["model.onnx", "weights.pt"]
    alone = tmp_path / "elsewhere" / "model.onnx"  # the file is the whole model (a download)
    alone.parent.mkdir()
    path.rename(alone)
    images = torch.randn(5, 3, 16, 16)  # another batch size than exported with
    session = onnxruntime.InferenceSession(str(alone))
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model.eval()(images),
                                   atol=1e-4, rtol=0)


def test_state_dict_format_writes_the_genotype_beside_it(tmp_path):
    spec = ExportSpec(ENAS_MICRO, num_classes=4, cells=1, channels=6, input_size=16)
    files = export(spec, tmp_path / "model.pt", "state-dict")
    assert [path.name for path in files] == [
        "model.pt", "model.genotype.json", "model.network.json"]
    assert Genotype.from_json(files[1].read_text()) == ENAS_MICRO
    settings = json.loads(files[2].read_text())
    assert settings["cells"] == 1 and settings["stem"] == "cifar"
    rebuilt = CellNetwork(ENAS_MICRO, num_classes=4, cells=1, channels=6)
    rebuilt.load_state_dict(torch.load(files[0], weights_only=True))


def test_weights_that_do_not_fit_are_one_clear_error(tmp_path):
    other = CellNetwork(NASNET_A, num_classes=4, cells=1, channels=8)
    torch.save(other.state_dict(), tmp_path / "weights.pt")
    spec = ExportSpec(NASNET_A, num_classes=4, cells=1, channels=6)
    with pytest.raises(ExportError, match="do not fit this network"):
        export(spec, tmp_path / "model.py", "py", tmp_path / "weights.pt")
    assert not (tmp_path / "model.py").exists()


# --- the command ------------------------------------------------------------------------------


def nas(env, *args):
    return subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=300)


def make_search(home: Path, rewards: list[float], *, finish: bool = True) -> str:
    config = {"name": "proxy", "dataset": {"name": "digits"},
              "network": {"cells": 1, "channels": 4}}
    with Store(f"sqlite:///{home / 'nas.db'}") as store:
        search = store.create_search("proxy", config, 0)
        store.set_status(search.id, SearchStatus.RUNNING)
        genotypes = [NASNET_A, ENAS_MICRO, *random_genotypes(len(rewards))][:len(rewards)]
        ids = store.add_architectures(search.id, 0, genotypes, "standalone")
        for architecture_id, reward in zip(ids, rewards, strict=True):
            store.start_architecture(architecture_id)
            store.finish_architecture(architecture_id, state=ArchitectureState.COMPLETE,
                                      reward=reward, accuracy=reward)
        if finish:
            store.set_status(search.id, SearchStatus.FINISHED)
        return search.id


def test_export_best_of_the_latest_finished_search(env, tmp_path):
    home = Path(env["NAS_HOME"])
    make_search(home, [0.5, 0.9])  # ENAS (0.9) is the best, NASNet-A the runner-up
    result = nas(env, "export", "best", "--rank", "2", "-o", str(tmp_path / "out" / "net.py"),
                 "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rank"] == 2 and summary["reward"] == 0.5
    # digits: 10 classes, 1 channel, 8 px; the search's proxy network: 1 cell, 4 channels
    assert summary["network"] | {"cells": 1, "channels": 4, "num_classes": 10,
                                 "in_channels": 1, "input_size": 8} == summary["network"]
    source = (tmp_path / "out" / "net.py").read_text()
    assert "sep_conv_7x7" in source  # NASNet-A's reduction cell, not ENAS's
    spec = importlib.util.spec_from_file_location("net", tmp_path / "out" / "net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build_model()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", [], "no finished search"),
        ("unfinished", [], "no finished search"),
        ("finished", ["--search", "nosuchsearch"], "unknown search id 'nosuchsearch'"),
        ("finished", ["--rank", "3"], "rank 3 is out of range"),
        ("finished", ["--rank", "0"], "rank 0 is out of range"),
        ("finished", ["--format", "keras"], "unknown format 'keras'"),
        ("finished", ["--weights", "/nonexistent/w.pt"], "weights file /nonexistent/w.pt"),
    ],
)
def test_export_errors_exit_2_with_one_line(env, tmp_path, setup, args, message):
    home = Path(env["NAS_HOME"])
    if setup != "none":
        make_search(home, [0.5, 0.9], finish=setup == "finished")
    result = nas(env, "export", "best", *args, "-o", str(tmp_path / "net.py"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "net.py").exists()


def test_export_best_as_torchscript_and_state_dict_with_given_weights(env, tmp_path):
    search_id = make_search(Path(env["NAS_HOME"]), [0.9])  # NASNet-A
    trained = randomize(CellNetwork(NASNET_A, num_classes=3, cells=2, channels=6,
                                    in_channels=1))
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    flags = ["--search", search_id, "--cells", "2", "--channels", "6", "--num-classes", "3",
             "--weights", str(tmp_path / "trained.pt")]
    scripted = nas(env, "export", "best", *flags, "--format", "torchscript",
                   "-o", str(tmp_path / "net.ts"))
    assert scripted.returncode == 0, scripted.stderr
    assert "Warning" not in scripted.stderr  # TracerWarnings with source lines, before
    images = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(tmp_path / "net.ts"))(images),
                                   trained.eval()(images), atol=1e-5, rtol=0)
    saved = nas(env, "export", "best", *flags, "--format", "state-dict",
                "-o", str(tmp_path / "net.pt"))
    assert saved.returncode == 0, saved.stderr
    state = torch.load(tmp_path / "net.pt", weights_only=True)
    assert all(torch.equal(state[key], value) for key, value in trained.state_dict().items())
    assert Genotype.from_json((tmp_path / "net.genotype.json").read_text()) == NASNET_A
