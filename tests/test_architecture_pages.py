"""Keyset pages of a search's architectures (NULLs last, ties by id, both orders) follow an
index on (search_id, column); migration 0003 adds those indexes to a revision 0002 database
with its rows intact. SQLite file and PostgreSQL (a throwaway schema)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect, text

from nas.store import ArchitectureState, Store
from nas.store.migrations import upgrade
from searchspace.genotype import Genotype

GENOTYPE = Genotype(normal=[(0, "identity", 1, "sep_conv_3x3")],
                    reduction=[(0, "max_pool_3x3", 1, "identity")])


def walk(store, search_id, **options):
    rows, cursor = [], None
    while True:
        page = store.page_architectures(search_id, cursor=cursor, limit=3, **options)
        rows += page.items
        cursor = page.next_cursor
        if cursor is None:
            return rows


@pytest.mark.parametrize("sort", ["reward", "params", "step"])
@pytest.mark.parametrize("descending", [None, True, False])
def test_pages_put_nulls_last_and_break_ties_by_id(database_url, sort, descending):
    with Store(database_url) as store:
        search_id = store.create_search("pages", {}, seed=0).id
        ids = store.add_architectures(search_id, 0, [GENOTYPE] * 14, "synthetic")
        rng = random.Random(0)
        for index, architecture_id in enumerate(ids):
            if index % 5 == 4:
                store.finish_architecture(architecture_id, state=ArchitectureState.FAIL,
                                          error="x")
            else:  # few distinct values: many ties
                store.finish_architecture(architecture_id, state=ArchitectureState.COMPLETE,
                                          reward=rng.choice([0.1, 0.5, 0.9]),
                                          params=rng.choice([10, 20]))
        rows = walk(store, search_id, sort=sort, descending=descending)
        down = sort == "reward" if descending is None else descending
        def key(row):
            value = getattr(row, sort)
            return (value is None, 0 if value is None else (-value if down else value), row.id)

        assert [row.id for row in rows] == [row.id for row in sorted(rows, key=key)]
        assert sorted(row.id for row in rows) == ids


def test_migration_0003_indexes_a_revision_0002_database_with_its_rows(database_url):
    engine = create_engine(database_url)
    upgrade(engine, "0002")
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO searches (id, name, status, config, seed, created_at)"
            " VALUES ('old1', 'kept', 'finished', '{}', 7, :t)"), {"t": created})
        for step, reward in enumerate([0.5, None, 0.9]):
            connection.execute(text(
                "INSERT INTO architectures (search_id, step, genotype, genotype_id, state, role,"
                " evaluator, reward, params, created_at) VALUES ('old1', :s, :g, :gid, :state,"
                " 'candidate', 'synthetic', :r, 100, :t)"),
                {"s": step, "g": GENOTYPE.to_json(), "gid": GENOTYPE.id, "r": reward, "t": created,
                 "state": "FAIL" if reward is None else "COMPLETE"})
    engine.dispose()
    with Store(database_url) as store:
        assert [row.reward for row in walk(store, "old1")] == [0.9, 0.5, None]
        assert store.get_search("old1").best_reward == 0.9
    engine = create_engine(database_url)
    with engine.connect() as connection:
        names = {index["name"] for index in inspect(connection).get_indexes("architectures")}
    engine.dispose()
    assert {f"ix_architectures_search_id_{column}" for column in ("reward", "params", "flops")
            } <= names
