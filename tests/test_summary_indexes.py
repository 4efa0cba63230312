"""A search's summary (`GET /searches/{id}`, the dashboard, `nas list`) reads indexes only.

The best reward by role and the candidate count read every row of the search before migration
0006 (about 140 ms each at 100,000 architectures; `bench/api.py`); they now read the index
(search_id, role, state, reward) alone, which SQLite's query plan shows.
"""

import random
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine

from nas.service import searches as search_service
from nas.store import ArchitectureRole, ArchitectureState, Store
from nas.store.migrations import upgrade
from searchspace.spaces import SearchSpace

INDEX = "ix_architectures_search_id_role_state_reward"


def _scored_search(store: Store) -> tuple[str, float]:
    """A search with 40 candidates (every tenth failed) and 2 derived cells; the best derived
    reward, which the ranking puts first."""
    search_id = store.create_search("indexed", {}, seed=0).id
    space, rng = SearchSpace(), random.Random(0)
    candidates = store.add_architectures(search_id, 0, [space.sample(rng) for _ in range(40)],
                                         "enas")
    for index, architecture_id in enumerate(candidates):
        failed = index % 10 == 0
        store.finish_architecture(
            architecture_id, state=ArchitectureState.FAIL if failed else ArchitectureState.COMPLETE,
            reward=None if failed else rng.random(), error="broken" if failed else None)
    derived = store.add_architectures(search_id, 1, [space.sample(rng) for _ in range(2)], "enas",
                                      role=ArchitectureRole.DERIVED)
    for architecture_id, reward in zip(derived, (0.25, 0.5), strict=True):
        store.finish_architecture(architecture_id, state=ArchitectureState.COMPLETE, reward=reward)
    return search_id, 0.5


def _statements_of(call) -> list[tuple[str, tuple]]:
    seen: list[tuple[str, tuple]] = []

    def record(connection, cursor, statement, parameters, context, executemany):
        seen.append((statement, tuple(parameters or ())))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return seen


def test_a_search_summary_reads_the_architectures_through_a_covering_index(tmp_path):
    path = tmp_path / "nas.db"
    with Store(f"sqlite:///{path}") as store:
        search_id, best = _scored_search(store)
        found = []
        statements = _statements_of(lambda: found.append(search_service.summary(store, search_id)))
    assert found[0].search.best_reward == best
    assert found[0].architectures == 40
    plans = []
    with sqlite3.connect(path) as connection:
        for statement, parameters in statements:
            if "architectures" in statement and statement.lstrip().upper().startswith("SELECT"):
                plans += [row[3] for row in connection.execute(
                    "EXPLAIN QUERY PLAN " + statement, parameters)]
    reads = [step for step in plans if "architectures" in step]
    assert len(reads) >= 3  # the best of two roles, and the count
    assert all(f"COVERING INDEX {INDEX}" in step for step in reads), reads


def test_migration_0006_adds_the_index_and_keeps_the_rows(database_url):
    engine = create_engine(database_url)
    upgrade(engine, "0005")
    genotype = SearchSpace().sample(random.Random(1))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO searches (id, name, status, config, seed, created_at)"
            " VALUES ('old1', 'kept', 'finished', '{}', 7, :t)"), {"t": now})
        for step, role in enumerate(("candidate", "candidate", "derived")):
            connection.execute(text(
                "INSERT INTO architectures (search_id, step, genotype, genotype_id, state, role,"
                " evaluator, reward, created_at) VALUES ('old1', :s, :g, :gid, 'COMPLETE',"
                " :role, 'enas', :r, :t)"),
                {"s": step, "g": genotype.to_json(), "gid": genotype.id, "r": 0.3 - 0.1 * step,
                 "role": role, "t": now})
    engine.dispose()
    with Store(database_url) as store:
        summary = search_service.summary(store, "old1")
        rows = store.architectures("old1", order="step")
    assert summary.search.best_reward == pytest.approx(0.1)  # the derived cell's, as before
    assert summary.architectures == 2
    assert [(row.step, str(row.role)) for row in rows] == [
        (0, "candidate"), (1, "candidate"), (2, "derived")]
    engine = create_engine(database_url)
    with engine.connect() as connection:
        indexes = {index["name"] for index in inspect(connection).get_indexes("architectures")}
    engine.dispose()
    assert INDEX in indexes
