"""`nas zoo list`'s rows: parameters, multiply-adds and CPU latency, measured once and kept."""

from __future__ import annotations

import json

import pytest

from nas.service import zoo


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_HOME", str(tmp_path))
    zoo.listing.cache_clear()
    yield tmp_path
    zoo.listing.cache_clear()


def _first_rows(monkeypatch, count: int):
    """Only the first `count` architectures, to keep the test short."""
    from nas import architectures

    chosen = architectures.all_architectures()[:count]
    monkeypatch.setattr(zoo, "all_architectures", lambda: chosen)
    return chosen


def test_rows_are_measured_once_and_read_back_from_the_cache(home, monkeypatch):
    _first_rows(monkeypatch, 2)
    first = zoo.listing()
    cached = json.loads(zoo.cache_path().read_text())
    key = next(iter(cached["rows"]))
    cached["rows"][key]["latency_ms"] = 12345.0  # a kept measurement is what the list shows
    zoo.cache_path().write_text(json.dumps(cached))
    zoo.listing.cache_clear()

    second = zoo.listing()

    assert all(row["latency_ms"] > 0 and row["params"] > 0 for row in first)
    assert 12345.0 in [row["latency_ms"] for row in second]
    assert [row["name"] for row in second] == [row["name"] for row in first]


def test_a_changed_fingerprint_measures_again(home, monkeypatch):
    _first_rows(monkeypatch, 1)
    zoo.listing()
    cached = json.loads(zoo.cache_path().read_text())
    cached["fingerprint"] = "old-code"
    for row in cached["rows"].values():
        row["latency_ms"] = 12345.0
    zoo.cache_path().write_text(json.dumps(cached))
    zoo.listing.cache_clear()

    (row,) = zoo.listing()

    assert row["latency_ms"] != 12345.0


def test_an_unwritable_home_still_lists(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NAS_HOME", str(blocker))
    zoo.listing.cache_clear()
    _first_rows(monkeypatch, 1)

    (row,) = zoo.listing()

    assert row["latency_ms"] > 0
    zoo.listing.cache_clear()
