"""The import-linter contracts (pyproject.toml) cover every module of the engine: a module
added to `nas` is held to the engine's contract unless it is the service layer or the CLI."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_THE_ENGINE = {"nas.service", "nas.cli"}


def _engine_contract() -> dict:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    [contract] = [c for c in contracts if c["name"].startswith("the engine does not import")]
    return contract


def test_every_engine_module_is_under_the_engines_contract():
    modules = {f"nas.{path.stem}" for path in (ROOT / "nas").glob("*.py")
               if path.stem != "__init__"}
    packages = {f"nas.{path.parent.name}" for path in (ROOT / "nas").glob("*/__init__.py")}
    engine = (modules | packages) - ABOVE_THE_ENGINE
    listed = set(_engine_contract()["source_modules"])
    assert engine - listed == set(), "add these to the engine's contract in pyproject.toml"
    assert listed - engine == set(), "the contract names modules that do not exist"
