"""One owner per search, in the store: atomic claims, fencing by epoch, the resume limit, and
migration 0002 on a database made by revision 0001. SQLite file and PostgreSQL (a throwaway
schema) when NAS_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from nas.store import (
    ArchitectureState,
    OwnershipLost,
    ResumeLimitReached,
    SearchOwned,
    SearchStatus,
    Store,
)
from nas.store.migrations import upgrade
from searchspace.genotype import Genotype

GENOTYPE = Genotype(normal=[(0, "identity", 1, "sep_conv_3x3")],
                    reduction=[(1, "max_pool_3x3", 0, "identity")])


@pytest.fixture
def store(database_url):
    with Store(database_url) as opened:
        yield opened


def counts(store: Store, search_id: str) -> tuple[int, int, bool]:
    return (store.count_architectures(search_id), len(store.events(search_id)),
            store.latest_checkpoint(search_id) is not None)


def test_a_live_owner_refuses_a_second_claim(store):
    search = store.create_search("s", {}, seed=0)
    lease = store.claim_search(search.id, "first", stale_after=30)
    with pytest.raises(SearchOwned, match=r"owned by a live process \(owner first, heartbeat"):
        store.claim_search(search.id, "second", stale_after=30)
    record = store.get_search(search.id)
    assert (record.status, record.owner, record.owner_epoch) == (SearchStatus.RUNNING, "first",
                                                                  lease.epoch)
    assert record.heartbeat_at is not None


def test_a_stale_owner_is_replaced_and_cannot_write_any_more(store):
    """Fencing: after a takeover every write of the old lease is refused and changes nothing."""
    search = store.create_search("s", {}, seed=0)
    old = store.fenced(store.claim_search(search.id, "old", stale_after=30))
    [architecture] = old.add_architectures(search.id, 0, [GENOTYPE], "synthetic")
    new_lease = store.claim_search(search.id, "new", stale_after=0)  # old's heartbeat is stale
    assert new_lease.epoch == old.lease.epoch + 1
    before = counts(store, search.id)
    writes = [
        lambda: old.add_architectures(search.id, 1, [GENOTYPE], "synthetic"),
        lambda: old.start_architecture(architecture),
        lambda: old.finish_architecture(architecture, state=ArchitectureState.COMPLETE,
                                        reward=1.0),
        lambda: old.add_event(search.id, "x", "y"),
        lambda: old.save_checkpoint(search.id, 1, b"payload"),
        lambda: old.set_status(search.id, SearchStatus.FAILED, error="old"),
        lambda: old.delete_architectures_after(search.id, -1),
        old.heartbeat,
    ]
    for write in writes:
        with pytest.raises(OwnershipLost, match="lost ownership"):
            write()
    assert counts(store, search.id) == before
    assert store.get_architecture(architecture).state is ArchitectureState.WAITING
    record = store.get_search(search.id)
    assert (record.status, record.owner, record.owner_epoch) == (SearchStatus.RUNNING, "new",
                                                                  new_lease.epoch)
    assert old.release_search() is False and store.get_search(search.id).owner == "new"
    new = store.fenced(new_lease)
    new.add_event(search.id, "x", "the current owner writes")
    assert new.release_search() is True
    assert store.get_search(search.id).owner is None
    with pytest.raises(OwnershipLost, match="released"):
        new.add_event(search.id, "x", "not after its release")


def _claim(url: str, search_id: str, owner: str, barrier, results) -> None:
    with Store(url) as store:
        barrier.wait()
        try:
            store.claim_search(search_id, owner, stale_after=30)
            results.put(owner)
        except SearchOwned:
            results.put(None)


def test_claims_from_processes_at_once_have_one_winner(store, database_url):
    search = store.create_search("s", {}, seed=0)
    context = multiprocessing.get_context("spawn")
    workers = 4
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_claim,
                                 args=(database_url, search.id, f"p{i}", barrier, results))
                 for i in range(workers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    winners = [owner for owner in outcomes if owner is not None]
    assert len(winners) == 1
    record = store.get_search(search.id)
    assert (record.owner, record.owner_epoch) == (winners[0], 1)


def test_resuming_without_progress_is_capped_and_fails_with_the_reason(store):
    search = store.create_search("crashes", {}, seed=0)
    store.claim_search(search.id, "run", stale_after=30, max_resumes=2)  # a first run
    for attempt in (1, 2):  # each owner dies (stale at once here); the next claim resumes it
        store.claim_search(search.id, f"resume{attempt}", stale_after=0, max_resumes=2)
        assert store.get_search(search.id).resume_attempts == attempt
    with pytest.raises(ResumeLimitReached, match="resumed 2 times without progress"):
        store.claim_search(search.id, "resume3", stale_after=0, max_resumes=2)
    record = store.get_search(search.id)
    assert record.status is SearchStatus.FAILED and record.owner is None
    assert "last error: owner resume2 stopped" in record.error
    # a user resuming a failed search decides to try again: the count starts over
    lease = store.claim_search(search.id, "user", stale_after=0, max_resumes=2)
    assert store.get_search(search.id).resume_attempts == 0
    # and progress (a checkpoint) resets the count of a search that keeps dying
    store.claim_search(search.id, "again", stale_after=0, max_resumes=2)
    assert store.get_search(search.id).resume_attempts == 1
    lease = store.claim_search(search.id, "progress", stale_after=0, max_resumes=2)
    store.fenced(lease).save_checkpoint(search.id, 1, b"state")
    assert store.get_search(search.id).resume_attempts == 0


def test_interrupted_searches_resume_and_finished_ones_cannot_be_claimed(store):
    search = store.create_search("s", {}, seed=0)
    owned = store.fenced(store.claim_search(search.id, "a", stale_after=30))
    owned.set_status(search.id, SearchStatus.INTERRUPTED, error="interrupted by SIGTERM")
    owned.release_search()
    lease = store.claim_search(search.id, "b", stale_after=30, max_resumes=3)
    assert store.get_search(search.id).resume_attempts == 1
    events = store.events(search.id)
    assert "interrupted: interrupted by SIGTERM" in events[-1].message
    store.fenced(lease).set_status(search.id, SearchStatus.FINISHED)
    with pytest.raises(ValueError, match="already finished"):
        store.claim_search(search.id, "c", stale_after=0)


def test_stale_is_judged_from_the_heartbeat(store):
    search = store.create_search("s", {}, seed=0)
    store.claim_search(search.id, "a", stale_after=30)
    record = store.get_search(search.id)
    assert not record.is_stale(30)
    later = datetime.fromtimestamp(record.heartbeat_at.timestamp() + 31, UTC)
    assert record.is_stale(30, now=later)
    assert not store.get_search(store.create_search("q", {}, seed=0).id).is_stale(30)


def test_migration_0002_keeps_the_rows_of_a_revision_0001_database(database_url):
    """A database made by the previous commit's schema (revision 0001), with rows in every
    table, upgraded by opening a store: rows intact, the new columns at their defaults."""
    engine = create_engine(database_url)
    upgrade(engine, "0001")
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO searches (id, name, status, config, seed, created_at, started_at, error)"
            " VALUES ('old1', 'kept', 'running', '{\"a\": 1}', 7, :t, :t, NULL)"), {"t": created})
        connection.execute(text(
            "INSERT INTO architectures (search_id, step, genotype, genotype_id, state, role,"
            " evaluator, reward, created_at) VALUES ('old1', 0, :g, :gid, 'COMPLETE',"
            " 'candidate', 'synthetic', 0.5, :t)"),
            {"g": GENOTYPE.to_json(), "gid": GENOTYPE.id, "t": created})
        connection.execute(text("INSERT INTO events (search_id, created_at, kind, message)"
                                " VALUES ('old1', :t, 'started', 'hello')"), {"t": created})
        connection.execute(text("INSERT INTO checkpoints (search_id, step, created_at, payload)"
                                " VALUES ('old1', 1, :t, :p)"), {"t": created, "p": b"\x00ck"})
    engine.dispose()
    with Store(database_url) as store:
        record = store.get_search("old1")
        assert (record.name, record.status, record.config, record.seed, record.created_at) == (
            "kept", SearchStatus.RUNNING, {"a": 1}, 7, created)
        assert (record.owner, record.owner_epoch, record.heartbeat_at,
                record.resume_attempts) == (None, 0, None, 0)
        assert record.is_stale(30)  # running without an owner: shown as stale
        [architecture] = store.architectures("old1")
        assert (architecture.genotype, architecture.reward) == (GENOTYPE, 0.5)
        assert [event.message for event in store.events("old1")] == ["hello"]
        assert store.latest_checkpoint("old1").payload == b"\x00ck"
        lease = store.claim_search("old1", "new", stale_after=30)  # and it can be resumed
        assert lease.epoch == 1
