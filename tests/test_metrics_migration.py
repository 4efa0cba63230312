"""Migration 0004: the weights path and the retrained flag become columns, rows intact."""

import json
from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from nas.metrics import Metrics
from nas.store import ArchitectureState, Store
from nas.store.migrations import upgrade
from searchspace.genotype import Genotype

GENOTYPE = Genotype(normal=[(0, "identity", 1, "sep_conv_3x3")],
                    reduction=[(0, "max_pool_3x3", 1, "identity")])
RETRAINED = {"state": "COMPLETE", "accuracy": 0.8, "params": 1000, "flops": 2000,
             "train_seconds": 3.5, "error": None}
METRICS = [  # as revision 0003 wrote them: the weights path and the retrained outcome inside
    {"history": [{"epoch": 1, "val_accuracy": 0.5}], "weights": "/w/standalone.pt"},
    {"supernet_epochs": 3, "scored_on": 200, "derived_from": 6, "retrained": RETRAINED,
     "weights": "/w/derived.pt"},
    {"supernet_epochs": 3, "scored_on": 32},
    None,
]


def _database_at_0003(url: str) -> None:
    engine = create_engine(url)
    upgrade(engine, "0003")
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO searches (id, name, status, config, seed, created_at)"
            " VALUES ('old1', 'kept', 'finished', '{}', 7, :t)"), {"t": created})
        for step, metrics in enumerate(METRICS):
            connection.execute(text(
                "INSERT INTO architectures (search_id, step, genotype, genotype_id, state, role,"
                " evaluator, reward, metrics, created_at) VALUES ('old1', :s, :g, :gid,"
                " 'COMPLETE', :role, 'enas', :r, :m, :t)"),
                {"s": step, "g": GENOTYPE.to_json(), "gid": GENOTYPE.id, "r": 0.1 * step,
                 "m": None if metrics is None else json.dumps(metrics), "t": created,
                 "role": "derived" if step == 1 else "candidate"})
    engine.dispose()


def test_migration_0004_moves_weights_and_retrained_into_columns(database_url):
    _database_at_0003(database_url)
    with Store(database_url) as store:
        rows = store.architectures("old1", order="step")
        assert [row.weights_path for row in rows] == ["/w/standalone.pt", "/w/derived.pt",
                                                      None, None]
        assert [row.retrained for row in rows] == [False, True, False, False]
        assert [row.reward for row in rows] == [0.0, 0.1, 0.2, 0.30000000000000004]
        assert [str(row.role) for row in rows] == ["candidate", "derived", "candidate",
                                                   "candidate"]
        kept = [None if row.metrics is None else row.metrics.to_json() for row in rows]
        assert kept == [None if m is None else {k: v for k, v in m.items() if k != "weights"}
                        for m in METRICS]
        assert rows[1].metrics.retrained.accuracy == 0.8
        assert rows[1].metrics.retrained.state is ArchitectureState.COMPLETE
    engine = create_engine(database_url)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("architectures")}
    engine.dispose()
    assert {"weights_path", "retrained"} <= columns


def test_migration_0004_downgrade_puts_the_weights_back(database_url):
    from alembic import command

    from nas.store.migrations import alembic_config

    _database_at_0003(database_url)
    engine = create_engine(database_url)
    upgrade(engine)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
        found = connection.execute(text(
            "SELECT metrics FROM architectures ORDER BY step")).scalars().all()
    engine.dispose()
    decoded = [value if not isinstance(value, str) else json.loads(value) for value in found]
    assert decoded == METRICS


def test_the_store_keeps_weights_and_retrained_in_their_columns(store):
    search = store.create_search("s", {}, seed=0)
    ids = store.add_architectures(search.id, 0, [GENOTYPE, GENOTYPE], "enas")
    metrics = Metrics(supernet_epochs=1, retrained=RETRAINED)
    first = store.finish_architecture(ids[0], state="COMPLETE", reward=0.5, metrics=metrics,
                                      weights_path="/w/a.pt")
    second = store.finish_architecture(ids[1], state="COMPLETE", reward=0.4,
                                       metrics={"supernet_epochs": 1, "custom": [1, 2]})
    assert (first.weights_path, first.retrained) == ("/w/a.pt", True)
    assert first.metrics.to_json() == {"supernet_epochs": 1, "retrained": RETRAINED}
    assert (second.weights_path, second.retrained) == (None, False)
    assert second.metrics.to_json() == {"supernet_epochs": 1, "custom": [1, 2]}
