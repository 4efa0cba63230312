"""Architectures carry the op set they were found with; exports refuse another op set.

The fingerprint test is the guard that makes the version mean something: any change of the
definitions that build a network from a genotype fails it until the fingerprint is recorded
below, and recording it is the moment to raise `OP_SET_VERSION` if the networks changed.
"""

import ast
import hashlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import searchspace
from nas.store import ArchitectureState, SearchStatus, Store
from nas.store.migrations import upgrade
from searchspace.op_set import OP_SET_VERSION
from searchspace.references import REFERENCE_GENOTYPES

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
BUILDING_MODULES = ("ops.py", "cells.py", "network.py")
# OP_SET_VERSION -> fingerprint of BUILDING_MODULES (code only: comments, docstrings and
# formatting do not count)
FINGERPRINTS = {1: "73bd77697b3e7e6e"}


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def fingerprint() -> str:
    folder = Path(searchspace.__file__).parent
    digest = hashlib.sha256()
    for name in BUILDING_MODULES:
        tree = _without_docstrings(ast.parse((folder / name).read_text()))
        digest.update(ast.dump(tree, annotate_fields=False).encode())
    return digest.hexdigest()[:16]


def test_the_op_definitions_are_those_of_the_recorded_op_set():
    found = fingerprint()
    assert FINGERPRINTS.get(OP_SET_VERSION) == found, (
        f"searchspace/{{{','.join(BUILDING_MODULES)}}} changed (fingerprint {found}). If a "
        f"genotype now builds another network, raise searchspace.op_set.OP_SET_VERSION to "
        f"{OP_SET_VERSION + 1} and record {{{OP_SET_VERSION + 1}: {found!r}}} here; if not "
        f"(a refactoring), record {found!r} for {OP_SET_VERSION}")


def _search(url: str, found_with: int) -> tuple[str, int]:
    """A finished digits search whose one architecture was found with op set `found_with`."""
    with Store(url) as store:
        search = store.create_search("old", {"dataset": {"name": "digits"},
                                             "network": {"cells": 1, "channels": 4}}, 0)
        store.set_status(search.id, SearchStatus.RUNNING)
        [architecture_id] = store.add_architectures(search.id, 0,
                                                    [REFERENCE_GENOTYPES["enas"]], "enas")
        store.start_architecture(architecture_id)
        store.finish_architecture(architecture_id, state=ArchitectureState.COMPLETE,
                                  reward=0.9, accuracy=0.9)
        store.set_status(search.id, SearchStatus.FINISHED)
        assert store.get_architecture(architecture_id).op_set_version == OP_SET_VERSION
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE architectures SET op_set_version = :v WHERE id = :i"),
                           {"v": found_with, "i": architecture_id})
    engine.dispose()
    return search.id, architecture_id


def test_nas_export_refuses_an_architecture_of_another_op_set(env, tmp_path):
    url = f"sqlite:///{tmp_path / 'home' / 'nas.db'}"
    (tmp_path / "home").mkdir()
    search_id, architecture_id = _search(url, OP_SET_VERSION + 1)
    result = subprocess.run([*NAS, "export", "best", "-o", str(tmp_path / "net.py")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert (f"architecture {architecture_id} was found with op set {OP_SET_VERSION + 1}; this "
            f"release builds op set {OP_SET_VERSION}") in line
    assert not (tmp_path / "net.py").exists()
    shown = subprocess.run([*NAS, "show", search_id, "--json"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert f'"op_set_version": {OP_SET_VERSION + 1}' in shown.stdout


def test_the_api_export_of_another_op_set_is_a_conflict(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    _, stale = _search(url, OP_SET_VERSION + 1)
    _, current = _search(url, OP_SET_VERSION)
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    settings = ServerSettings(api_token="t" * 32, database_url=url, runner="process",
                              home=tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": "Bearer " + "t" * 32}
        refused = client.get(f"/api/v1/architectures/{stale}/export", headers=headers)
        exported = client.get(f"/api/v1/architectures/{current}/export", headers=headers)
        shown = client.get(f"/api/v1/architectures/{stale}", headers=headers)
    assert refused.status_code == 409
    assert "was found with op set" in refused.json()["detail"]
    assert exported.status_code == 200 and b"def build_model" in exported.content
    assert shown.json()["op_set_version"] == OP_SET_VERSION + 1


def test_migration_0005_gives_every_existing_row_op_set_1(database_url):
    engine = create_engine(database_url)
    upgrade(engine, "0004")
    genotype = REFERENCE_GENOTYPES["enas"]
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO searches (id, name, status, config, seed, created_at)"
            " VALUES ('old1', 'kept', 'finished', '{}', 7, :t)"), {"t": datetime.now(UTC)})
        for step in range(3):
            connection.execute(text(
                "INSERT INTO architectures (search_id, step, genotype, genotype_id, state, role,"
                " evaluator, reward, created_at) VALUES ('old1', :s, :g, :gid, 'COMPLETE',"
                " 'candidate', 'enas', :r, :t)"),
                {"s": step, "g": genotype.to_json(), "gid": genotype.id, "r": 0.1 * step,
                 "t": datetime.now(UTC)})
    engine.dispose()
    with Store(database_url) as store:
        rows = store.architectures("old1", order="step")
        assert [(row.step, row.reward, row.op_set_version) for row in rows] == [
            (0, 0.0, 1), (1, 0.1, 1), (2, pytest.approx(0.2), 1)]
        assert rows[0].genotype == genotype
