"""One storage test suite, run against every back end.

SQLite (a real file) always; PostgreSQL when NAS_TEST_POSTGRES_URL is set, e.g. after
`eval "$(bash .ci/postgres.sh)"`. Each PostgreSQL test starts from an empty database.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, func, inspect, select, table

from nas.store import (
    ArchitectureRole,
    ArchitectureState,
    InvalidTransition,
    SearchStatus,
    Store,
    UnknownArchitecture,
    UnknownSearch,
)
from nas.store.engine import create_store_engine
from nas.store.migrations import alembic_config
from nas.store.models import Base
from searchspace.genotype import Genotype

POSTGRES_URL = os.environ.get("NAS_TEST_POSTGRES_URL")
OPS = ("identity", "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3", "avg_pool_3x3")
TABLES = {"searches", "architectures", "events", "checkpoints"}
COMPLETE, PRUNED, FAIL = (
    ArchitectureState.COMPLETE, ArchitectureState.PRUNED, ArchitectureState.FAIL
)


def genotype(index: int) -> Genotype:
    """A distinct small genotype for each index."""
    op_a, op_b = OPS[index % len(OPS)], OPS[index // len(OPS) % len(OPS)]
    return Genotype(normal=[(0, op_a, 1, op_b)], reduction=[(1, op_b, 0, op_a), (2, op_a, 0, op_a)])


def drop_everything(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        metadata = MetaData()
        metadata.reflect(connection)
        metadata.drop_all(connection)
    engine.dispose()


def count_rows(url: str, table_name: str) -> int:
    engine = create_store_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(table(table_name)))
    engine.dispose()
    return count


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nas.db'}"
    if not POSTGRES_URL:
        pytest.skip('PostgreSQL back end: NAS_TEST_POSTGRES_URL is not set '
                    '(eval "$(bash .ci/postgres.sh)" sets it)')
    drop_everything(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store(url) as opened:
        yield opened


@pytest.fixture
def search_id(store: Store) -> str:
    return store.create_search("test", {"strategy": "random"}, seed=0).id


# schema and migrations


def test_migrations_create_schema_and_reopening_is_a_no_op(url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with Store(url) as store:
        search = store.create_search("kept", {"a": 1}, seed=1)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert TABLES | {"alembic_version"} <= set(inspect(connection).get_table_names())
        assert MigrationContext.configure(connection).get_current_revision() == head == "0006"
    with Store(url) as store:
        assert store.get_search(search.id) == search
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head
    engine.dispose()


def test_migrations_match_the_models_exactly(store: Store, url: str) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'deep' / 'nas.db'}")
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def test_default_url_is_a_sqlite_file_in_nas_home(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NAS_DATABASE_URL", raising=False)
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    with Store() as store:
        store.create_search("default", {}, seed=0)
    assert (tmp_path / "home" / "nas.db").is_file()
    monkeypatch.setenv("NAS_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with Store() as store:
        assert store.url.endswith("other.db")


def test_the_store_imports_neither_torch_nor_other_project_packages() -> None:
    code = (
        "import sys, nas.store; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'server', 'workers'} or m in {'nas.search', 'nas.train', 'searchspace.ops'}); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# searches


def test_config_and_timestamps_round_trip(store: Store) -> None:
    config = {
        "name": "cifar-enas ✓",
        "space": {"blocks": 5, "ops": list(OPS)},
        "strategy": {"lr": 0.0035, "entropy_weight": 1.0e-4, "baseline": None},
        "flags": [True, False],
    }
    created = store.create_search("json", config, seed=2**32 - 1)
    loaded = store.get_search(created.id)
    assert loaded == created
    assert loaded.config == config
    assert loaded.seed == 2**32 - 1
    assert loaded.status is SearchStatus.QUEUED
    assert loaded.created_at.tzinfo is UTC
    assert loaded.started_at is None and loaded.finished_at is None and loaded.best_reward is None


def test_list_searches_newest_first_and_latest_search(store: Store) -> None:
    first = store.create_search("first", {}, seed=0)
    second = store.create_search("second", {}, seed=0)
    store.set_status(first.id, SearchStatus.RUNNING)
    assert [s.name for s in store.list_searches()] == ["second", "first"]
    assert [s.name for s in store.list_searches(limit=1)] == ["second"]
    assert store.latest_search().id == second.id
    assert store.latest_search(SearchStatus.RUNNING).id == first.id
    assert store.latest_search(SearchStatus.FINISHED) is None


def test_search_lifecycle_sets_timestamps_and_error(store: Store, search_id: str) -> None:
    running = store.set_status(search_id, SearchStatus.RUNNING)
    assert running.status is SearchStatus.RUNNING and running.started_at is not None
    requeued = store.set_status(search_id, SearchStatus.QUEUED)
    assert requeued.started_at == running.started_at and requeued.finished_at is None
    store.set_status(search_id, SearchStatus.RUNNING)
    failed = store.set_status(search_id, SearchStatus.FAILED, error="worker died")
    assert failed.error == "worker died" and failed.finished_at is not None
    resumed = store.set_status(search_id, "running")
    assert resumed.error is None and resumed.finished_at is None
    assert resumed.started_at == running.started_at
    finished = store.set_status(search_id, SearchStatus.FINISHED)
    assert finished.finished_at >= finished.started_at
    with pytest.raises(InvalidTransition, match="finished is final"):
        store.set_status(search_id, SearchStatus.QUEUED)


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], SearchStatus.FINISHED),
        ([], SearchStatus.QUEUED),
        ([SearchStatus.RUNNING], SearchStatus.RUNNING),
        ([SearchStatus.CANCELLED], SearchStatus.FINISHED),
        ([SearchStatus.FAILED], SearchStatus.CANCELLED),
        ([SearchStatus.RUNNING, SearchStatus.FINISHED], SearchStatus.RUNNING),
    ],
)
def test_illegal_transitions_are_refused(
    store: Store, search_id: str, path: list[SearchStatus], illegal: SearchStatus
) -> None:
    for status in path:
        store.set_status(search_id, status)
    before = store.get_search(search_id)
    with pytest.raises(InvalidTransition, match=f"cannot go from {before.status} to {illegal}"):
        store.set_status(search_id, illegal)
    assert store.get_search(search_id) == before


def test_unknown_ids_raise_lookup_errors_with_the_id(store: Store) -> None:
    with pytest.raises(UnknownSearch, match="^unknown search id 'xyz'$"):
        store.get_search("xyz")
    for call in (
        lambda: store.set_status("xyz", SearchStatus.RUNNING),
        lambda: store.delete_search("xyz"),
        lambda: store.add_architectures("xyz", 0, [genotype(0)], "enas"),
        lambda: store.architectures("xyz"),
        lambda: store.ranked_architectures("xyz"),
        lambda: store.count_architectures("xyz"),
        lambda: store.delete_architectures_after("xyz", 0),
        lambda: store.add_event("xyz", "log", "hello"),
        lambda: store.events("xyz"),
        lambda: store.save_checkpoint("xyz", 0, b""),
        lambda: store.latest_checkpoint("xyz"),
    ):
        with pytest.raises(UnknownSearch, match="'xyz'"):
            call()
    for call in (
        lambda: store.get_architecture(12345),
        lambda: store.start_architecture(12345),
        lambda: store.finish_architecture(12345, state=PRUNED),
    ):
        with pytest.raises(UnknownArchitecture, match="unknown architecture id 12345"):
            call()
    assert issubclass(UnknownSearch, LookupError) and issubclass(UnknownArchitecture, LookupError)


# architectures


def test_add_start_finish_architectures(store: Store, search_id: str) -> None:
    ids = store.add_architectures(search_id, 3, [genotype(1), genotype(2)], "standalone")
    assert len(ids) == 2 and ids[0] < ids[1]
    waiting = store.get_architecture(ids[0])
    assert waiting.state is ArchitectureState.WAITING and waiting.role == "candidate"
    assert waiting.genotype == genotype(1) and waiting.genotype_id == genotype(1).id
    assert (waiting.step, waiting.evaluator, waiting.reward) == (3, "standalone", None)
    assert store.start_architecture(ids[0]).state is ArchitectureState.RUNNING
    metrics = {"val_accuracy": [0.5, 0.61], "loss": [1.2, 0.9]}
    done = store.finish_architecture(
        ids[0], state=COMPLETE, reward=0.6, accuracy=0.61, params=120_000,
        flops=3_000_000_000, latency_ms=1.5, train_seconds=12.0, metrics=metrics,
    )
    assert store.get_architecture(ids[0]) == done
    assert (done.reward, done.accuracy, done.params, done.flops) == (0.6, 0.61, 120_000, 3 * 10**9)
    assert (done.latency_ms, done.train_seconds, done.metrics.to_json()) == (1.5, 12.0, metrics)
    assert done.finished_at.tzinfo is UTC and done.finished_at >= done.created_at
    pruned = store.finish_architecture(ids[1], state=PRUNED, reward=0.1)  # straight from WAITING
    assert pruned.state is PRUNED
    assert store.count_architectures(search_id) == 2
    assert store.count_architectures(search_id, state=COMPLETE) == 1


def test_finish_rules(store: Store, search_id: str) -> None:
    first, second = store.add_architectures(search_id, 0, [genotype(0), genotype(1)], "enas")
    with pytest.raises(ValueError, match="FAIL needs an error"):
        store.finish_architecture(first, state=FAIL)
    with pytest.raises(ValueError, match="COMPLETE needs a reward"):
        store.finish_architecture(first, state=COMPLETE)
    with pytest.raises(ValueError, match="cannot finish in state RUNNING"):
        store.finish_architecture(first, state=ArchitectureState.RUNNING)
    failed = store.finish_architecture(first, state=FAIL, error="CUDA out of memory")
    assert failed.state is FAIL and failed.error == "CUDA out of memory"
    with pytest.raises(InvalidTransition, match="already FAIL"):
        store.finish_architecture(first, state=COMPLETE, reward=1.0)
    with pytest.raises(InvalidTransition, match="only WAITING ones can start"):
        store.start_architecture(first)
    store.start_architecture(second)
    with pytest.raises(InvalidTransition):
        store.start_architecture(second)


def test_order_by_reward_puts_best_first_and_missing_rewards_last(
    store: Store, search_id: str
) -> None:
    rewards = [0.3, None, 0.9, 0.3, -0.5]
    ids = store.add_architectures(search_id, 0, [genotype(i) for i in range(5)], "enas")
    for architecture_id, reward in zip(ids, rewards, strict=True):
        if reward is not None:
            store.finish_architecture(architecture_id, state=COMPLETE, reward=reward)
    by_reward = store.architectures(search_id)
    assert [a.id for a in by_reward] == [ids[2], ids[0], ids[3], ids[4], ids[1]]
    assert [a.id for a in store.architectures(search_id, limit=2)] == [ids[2], ids[0]]
    assert store.architectures(search_id, state=ArchitectureState.WAITING)[0].id == ids[1]
    later = store.add_architectures(search_id, 1, [genotype(9)], "enas")
    by_step = store.architectures(search_id, order="step")
    assert [a.id for a in by_step] == [*ids, *later]
    with pytest.raises(ValueError, match="unknown order"):
        store.architectures(search_id, order="params")  # type: ignore[arg-type]


def test_ranking_complete_by_reward_derived_first_other_roles_apart(store: Store,
                                                                   search_id: str) -> None:
    ids = store.add_architectures(search_id, 0, [genotype(i) for i in range(5)], "enas")
    store.finish_architecture(ids[0], state=COMPLETE, reward=0.5)
    store.finish_architecture(ids[1], state=COMPLETE, reward=0.8)
    store.finish_architecture(ids[2], state=PRUNED, reward=0.99)  # stopped early: not ranked
    store.finish_architecture(ids[3], state=COMPLETE, reward=0.8)  # ties go to the earlier id
    ranked = store.ranked_architectures(search_id)
    assert [a.id for a in ranked] == [ids[1], ids[3], ids[0]]
    assert [a.id for a in store.ranked_architectures(search_id, limit=2)] == [ids[1], ids[3]]
    assert store.get_search(search_id).best_reward == 0.8

    (transferred,) = store.add_architectures(
        search_id, 1, [genotype(1)], "transfer", role="transferred", parent_id=ids[1]
    )
    assert store.get_architecture(transferred).parent_id == ids[1]
    assert store.get_architecture(transferred).role is ArchitectureRole.TRANSFERRED
    assert store.ranked_architectures(search_id, role="transferred") == []
    store.finish_architecture(transferred, state=COMPLETE, reward=0.95)
    ranked_transferred = store.ranked_architectures(search_id, role="transferred")
    assert [a.id for a in ranked_transferred] == [transferred]
    # another role is ranked apart: the search's best stays its candidates' best
    assert store.ranked_architectures(search_id)[0].id == ids[1]
    assert store.list_searches()[0].best_reward == 0.8
    # once derived cells are scored, they are what is ranked (and the search's best)
    (derived,) = store.add_architectures(search_id, 2, [genotype(7)], "enas", role="derived")
    assert store.ranked_architectures(search_id)[0].id == ids[1]  # not scored yet
    store.finish_architecture(derived, state=COMPLETE, reward=0.6)
    assert [a.id for a in store.ranked_architectures(search_id)] == [derived]
    assert store.get_search(search_id).best_reward == 0.6
    assert store.list_searches()[0].best_reward == 0.6
    assert [a.id for a in store.architectures(search_id, role="transferred")] == [transferred]
    assert store.count_architectures(search_id, role="candidate") == 5
    for bad in ("retrained", "Candidate"):  # roles are the enum's values, nothing else
        with pytest.raises(ValueError, match=f"'{bad}' is not a valid ArchitectureRole"):
            store.add_architectures(search_id, 1, [genotype(1)], "enas", role=bad)
        with pytest.raises(ValueError, match="not a valid ArchitectureRole"):
            store.architectures(search_id, role=bad)
    with pytest.raises(UnknownArchitecture):
        store.add_architectures(search_id, 1, [genotype(1)], "standalone", parent_id=10**6)


def test_delete_architectures_after_a_checkpoint_step(store: Store, search_id: str) -> None:
    def record(step: int) -> None:
        store.add_architectures(search_id, step, [genotype(2 * step), genotype(2 * step + 1)], "x")

    for step in range(4):
        record(step)
    assert store.delete_architectures_after(search_id, 1) == 4
    assert sorted({a.step for a in store.architectures(search_id)}) == [0, 1]
    for step in (2, 3):  # the resumed run records them again: nothing is duplicated
        record(step)
    steps = [a.step for a in store.architectures(search_id, order="step")]
    assert steps == [0, 0, 1, 1, 2, 2, 3, 3]
    assert store.delete_architectures_after(search_id, 3) == 0


def test_delete_search_cascades_to_everything_it_owns(
    store: Store, url: str, search_id: str
) -> None:
    other = store.create_search("other", {}, seed=0).id
    for owner in (search_id, other):
        (parent,) = store.add_architectures(owner, 0, [genotype(0)], "enas")
        store.add_architectures(owner, 1, [genotype(1)], "enas", role="derived", parent_id=parent)
        store.add_event(owner, "log", "started")
        store.save_checkpoint(owner, 1, b"state")
    store.delete_search(search_id)
    with pytest.raises(UnknownSearch):
        store.get_search(search_id)
    assert count_rows(url, "architectures") == 2
    assert count_rows(url, "events") == 1
    assert count_rows(url, "checkpoints") == 1
    assert store.count_architectures(other) == 2


# events and checkpoints


def test_events_after_id(store: Store, search_id: str) -> None:
    ids = [store.add_event(search_id, "step", f"step {i}", {"step": i}) for i in range(5)]
    assert ids == sorted(ids)
    assert [e.message for e in store.events(search_id)] == [f"step {i}" for i in range(5)]
    newer = store.events(search_id, after_id=ids[2])
    assert [(e.id, e.data) for e in newer] == [(ids[3], {"step": 3}), (ids[4], {"step": 4})]
    assert [e.id for e in store.events(search_id, after_id=ids[0], limit=2)] == ids[1:3]
    assert store.events(search_id, after_id=ids[-1]) == []
    no_data = store.add_event(search_id, "log", "no data")
    (event,) = store.events(search_id, after_id=ids[-1])
    assert (event.id, event.kind, event.data) == (no_data, "log", None)
    assert event.created_at.tzinfo is UTC


def test_checkpoints_keep_the_newest(store: Store, url: str, search_id: str) -> None:
    assert store.latest_checkpoint(search_id) is None
    for step in (10, 20, 30):
        store.save_checkpoint(search_id, step, f"state at {step}".encode())
    latest = store.latest_checkpoint(search_id)
    assert (latest.step, latest.payload) == (30, b"state at 30")
    assert "payload" not in repr(latest)
    assert count_rows(url, "checkpoints") == 2
    big = os.urandom(3 * 2**20)
    store.save_checkpoint(search_id, 40, big, keep=1)
    assert store.latest_checkpoint(search_id).payload == big
    assert count_rows(url, "checkpoints") == 1
    with pytest.raises(ValueError, match="keep must be at least 1"):
        store.save_checkpoint(search_id, 50, b"", keep=0)


# several processes


def write_architectures(url: str, count: int, barrier) -> None:
    """One process's share: open the (new) database together with the others, then record
    `count` architectures, each added, started, finished and logged in its own transactions."""
    barrier.wait()
    with Store(url) as store:
        search_id = store.create_search("concurrent", {}, seed=0).id
        for step in range(count):
            (architecture_id,) = store.add_architectures(search_id, step, [genotype(step)], "enas")
            store.start_architecture(architecture_id)
            store.finish_architecture(architecture_id, state=COMPLETE, reward=step / count)
            store.add_event(search_id, "architecture", f"step {step}")


def test_processes_sharing_a_new_database_lose_nothing(url: str) -> None:
    """Two processes migrate a new database at once, then write to it at once."""
    workers, count = 2, 50
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=write_architectures, args=(url, count, barrier))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * workers
    with Store(url) as store:
        searches = store.list_searches()
        assert len(searches) == workers
        for search in searches:
            architectures = store.architectures(search.id, order="step")
            assert [a.step for a in architectures] == list(range(count))
            assert {a.state for a in architectures} == {COMPLETE}
            events = store.events(search.id)
            logged = [event for event in events if event.message.startswith("step ")]
            assert len(logged) == count and len(events) == 2 * count  # + one per scored row
