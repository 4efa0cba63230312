"""The Tune adapter: a Ray upgrade that changes Tune's searcher interface fails here, loudly."""

import ast
import inspect
from pathlib import Path

from ray.tune.search import Searcher

from workers.tune_searcher import TUNE_INTERFACE, QueueSearcher

ROOT = Path(__file__).resolve().parent.parent


def _parameters(function) -> tuple[str, ...]:
    return tuple(inspect.signature(function).parameters)


def test_tunes_searcher_still_has_the_interface_the_adapter_overrides():
    for method, expected in TUNE_INTERFACE.items():
        tune_has = _parameters(getattr(Searcher, method))
        assert tune_has == expected, (
            f"ray.tune.search.Searcher.{method}{tune_has} is not the {expected} that "
            f"workers/tune_searcher.py was written against: adapt QueueSearcher")
    assert Searcher.FINISHED == "FINISHED"
    overridden = {name for name, value in vars(QueueSearcher).items()
                  if callable(value) and hasattr(Searcher, name)}
    assert overridden == set(TUNE_INTERFACE), "pin every Searcher method the adapter overrides"
    for method in set(TUNE_INTERFACE) - {"__init__"}:
        assert _parameters(getattr(QueueSearcher, method)) == TUNE_INTERFACE[method]


def test_only_the_adapter_subclasses_or_imports_tunes_searcher():
    users = []
    for path in sorted([*ROOT.glob("workers/*.py"), *ROOT.glob("nas/**/*.py"),
                        *ROOT.glob("server/**/*.py")]):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "ray.tune.search"):
                users.append(path.relative_to(ROOT).as_posix())
    assert users == ["workers/tune_searcher.py"]


def test_importing_the_ray_modules_leaves_tunes_environment_to_connect():
    """Tune's settings are set where Ray is started (`workers.cluster.connect`), not at import
    (ray and torch set variables of their own when imported)."""
    import subprocess
    import sys

    from workers.cluster import TUNE_ENVIRONMENT

    code = ("import os, sys; import workers.ray_evaluator, workers.tune_searcher; "
            "sys.stdout.write(repr({n: os.environ.get(n) for n in sys.argv[1:]}))")
    names = sorted(TUNE_ENVIRONMENT)
    environment = {key: value for key, value in __import__("os").environ.items()
                   if key not in TUNE_ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True,
                         cwd=ROOT, env=environment, check=True)
    assert out.stdout == repr(dict.fromkeys(names))
