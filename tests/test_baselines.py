"""Zoo baselines beside a search (`nas baselines`, `POST /api/v1/searches/{id}/baselines`):
real `nas` processes on a real SQLite file, the real app over HTTP on SQLite and PostgreSQL,
and the detached training process the API starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from servers import stop_runs_of

from nas.config import SearchConfig
from nas.search import create_search
from nas.store import SearchStatus, Store

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
TOKEN = "baseline-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# a finished-looking search on digits whose from-scratch recipe is one short epoch
CONFIG = {"name": "digits-standalone", "seed": 3, "strategy": {"name": "random"},
          "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 32},
          "dataset": {"name": "digits", "limit": 240}, "budget": {"architectures": 2}}


def nas(env, *args, check=True):
    result = subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    return {**os.environ, "NAS_HOME": str(home), "NAS_THREADS": "1",
            "NAS_DATABASE_URL": f"sqlite:///{home / 'nas.db'}"}


def ended_search(url):
    """A search on digits that ended (so no runner picks it up while its baselines train)."""
    with Store(url) as store:
        record = create_search(store, SearchConfig.model_validate(CONFIG))
        store.set_status(record.id, SearchStatus.RUNNING)
        store.set_status(record.id, SearchStatus.FINISHED)
        return record.id


@pytest.fixture
def search_id(env):
    return ended_search(env["NAS_DATABASE_URL"])


def zoo_rows(url, search_id):
    with Store(url) as store:
        return store.architectures(search_id, role="zoo", order="step")


def test_baselines_train_on_the_search_recipe_and_show_beside_it(env, search_id):
    out = nas(env, "baselines", "--search", search_id, "--arch", "lenet5", "--arch",
              "resnet20", "--json")
    shown = json.loads(nas(env, "show", search_id, "--json").stdout)
    text = nas(env, "show", search_id).stdout

    trained = json.loads(out.stdout)["baselines"]
    assert [row["name"] for row in trained] == ["lenet5", "resnet20"]
    assert all(row["state"] == "COMPLETE" and 0 <= row["accuracy"] <= 1 and row["params"] > 0
               and row["flops"] > 0 and row["latency_ms"] > 0 for row in trained)
    assert {row["name"] for row in shown["zoo"]} == {"lenet5", "resnet20"}
    assert "zoo baselines on the same data and recipe" in text and "resnet20" in text
    rows = zoo_rows(env["NAS_DATABASE_URL"], search_id)
    assert all(row.role == "zoo" and row.evaluator == "zoo" for row in rows)
    metrics = rows[0].metrics.to_json()
    recipe = metrics["recipe"]
    assert (recipe["epochs"], recipe["batch_size"], recipe["seed"]) == (1, 32, 3)
    assert metrics["dataset"]["limit"] == 240 and len(metrics["history"]) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "resnet_9000"], "unknown zoo network 'resnet_9000'"),
    (["--arch", "resnet20", "--queued", "1"], "give --arch or --queued, not both"),
    (["--queued", "999"], "unknown architecture"),
])
def test_bad_baseline_requests_exit_2_with_one_line_and_record_nothing(env, search_id, args,
                                                                       message):
    result = nas(env, "baselines", "--search", search_id, *args, check=False)

    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert zoo_rows(env["NAS_DATABASE_URL"], search_id) == []


def test_an_unknown_search_id_exits_2(env, search_id):
    result = nas(env, "baselines", "--search", "nope", check=False)

    assert result.returncode == 2 and "unknown search id 'nope'" in result.stderr


@pytest.fixture
def client(tmp_path, database_url, monkeypatch):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NAS_THREADS", "1")
    settings = ServerSettings(api_token=TOKEN, database_url=database_url, runner="process",
                              home=tmp_path / "home", max_running_searches=1)
    try:
        with TestClient(create_app(settings)) as test_client:
            test_client.database_url = database_url
            yield test_client
    finally:  # after the server: it launches no more
        stop_runs_of(tmp_path / "home")


def _search(client):
    return ended_search(client.database_url)


def test_post_baselines_queues_at_once_and_a_detached_run_trains_them(client):
    search_id = _search(client)

    response = client.post(f"/api/v1/searches/{search_id}/baselines",
                           json={"archs": ["lenet5", "squeezenet"]}, headers=AUTH)

    assert response.status_code == 202, response.text
    queued = response.json()["architectures"]
    assert [row["state"] for row in queued] == ["WAITING", "WAITING"]
    assert all(row["role"] == "zoo" for row in queued)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = client.get(f"/api/v1/searches/{search_id}/architectures",
                          params={"role": "zoo"}).json()["items"]
        if all(row["state"] in ("COMPLETE", "FAIL") for row in rows):
            break
        time.sleep(1)
    assert sorted(row["state"] for row in rows) == ["COMPLETE", "COMPLETE"]
    assert {row["genotype"]["normal"][0][1] for row in rows} == {"zoo:lenet5", "zoo:squeezenet"}
    assert client.get(f"/api/v1/searches/{search_id}/top").json() == []  # never ranked
    export = client.get(f"/api/v1/architectures/{rows[0]['id']}/export", params={"format": "py"})
    assert export.status_code == 422 and "zoo baseline" in export.json()["detail"]
    page = client.get(f"/architectures/{rows[0]['id']}")
    assert page.status_code == 200 and "Zoo baseline" in page.text


@pytest.mark.parametrize(("path", "body", "headers", "status", "detail"), [
    ("{id}", {"archs": ["resnet20"]}, {}, 401, "token"),
    ("{id}", {"archs": ["resnet20"]}, {"Authorization": "Bearer wrong"}, 401, "token"),
    ("nope", {"archs": ["resnet20"]}, AUTH, 404, "unknown search id 'nope'"),
    ("{id}", {"archs": ["resnet_9000"]}, AUTH, 422, "unknown zoo network 'resnet_9000'"),
    ("{id}", {"archs": ["resnet20"], "epochs": 9}, AUTH, 422, "epochs"),
    ("{id}", {"archs": "resnet20"}, AUTH, 422, "archs"),
])
def test_bad_baseline_posts_get_a_4xx_and_record_nothing(client, path, body, headers, status,
                                                         detail):
    search_id = _search(client)

    response = client.post(f"/api/v1/searches/{path.format(id=search_id)}/baselines",
                           json=body, headers=headers)

    assert response.status_code == status, response.text
    assert detail in json.dumps(response.json()["detail"])
    assert zoo_rows(client.database_url, search_id) == []


def test_a_second_request_while_baselines_train_is_a_conflict(store):
    from nas.service import baselines
    from nas.service.errors import Conflict

    record = create_search(store, SearchConfig.model_validate(CONFIG))
    (queued,) = baselines.queue(store, record.id, ["lenet5"])

    with pytest.raises(Conflict, match=f"--queued {queued.id}"):
        baselines.queue(store, record.id, ["resnet20"])
    assert len(store.architectures(record.id, role="zoo")) == 1


def test_a_server_that_trains_nothing_from_scratch_refuses_baselines(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    settings = ServerSettings(api_token=TOKEN, database_url=url, runner="process",
                              home=tmp_path / "home", allowed_evaluators=["synthetic"])
    search_id = ended_search(url)
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/api/v1/searches/{search_id}/baselines", json={},
                               headers=AUTH)

    assert response.status_code == 422 and "no zoo baselines" in response.json()["detail"]
    assert zoo_rows(url, search_id) == []


def test_such_a_server_refuses_an_enas_search_that_retrains_its_best(tmp_path, monkeypatch):
    """ENAS's `retrain_top` trains derived cells from scratch: the same policy applies."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    settings = ServerSettings(api_token=TOKEN, database_url=f"sqlite:///{tmp_path / 'nas.db'}",
                              runner="process", home=tmp_path / "home",
                              allowed_evaluators=["enas"])
    config = {"evaluator": {"name": "enas", "retrain_top": 1}, "budget": {"architectures": 4}}
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/searches", json=config, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "evaluator.retrain_top" in response.json()["detail"]
        assert client.get("/api/v1/searches").json()["items"] == []


def test_baselines_survive_a_resume_of_their_search(store):
    from nas.service import baselines

    record = create_search(store, SearchConfig.model_validate(CONFIG))
    (queued,) = baselines.queue(store, record.id, ["lenet5"])

    store.delete_architectures_after(record.id, -1)  # what a resume without checkpoint does

    assert [row.id for row in store.architectures(record.id, role="zoo")] == [queued.id]


@pytest.mark.slow
def test_resnet20_and_mobilenet_v2_beside_a_digits_search_show_in_nas_show(env, tmp_path):
    """The issue's done-when, end to end: a real ENAS search on digits, then the baselines."""
    config = tmp_path / "search.yaml"
    config.write_text(json.dumps({
        "name": "digits-enas", "seed": 0, "strategy": {"name": "reinforce"},
        "evaluator": {"name": "enas", "warmup_epochs": 1, "steps_per_epoch": 2,
                      "derive_samples": 4, "derive_top": 2, "epochs": 1},
        "dataset": {"name": "digits", "limit": 400}, "network": {"cells": 1, "channels": 8},
        "budget": {"architectures": 8}, "samples_per_step": 4}))
    search_id = json.loads(nas(env, "search", "-c", str(config), "--json").stdout)["search_id"]

    nas(env, "baselines", "--search", search_id, "--arch", "resnet20", "--arch", "mobilenet_v2")
    shown = json.loads(nas(env, "show", search_id, "--json").stdout)

    assert shown["top"] and shown["top"][0]["role"] == "derived"
    assert sorted(row["name"] for row in shown["zoo"]) == ["mobilenet_v2", "resnet20"]
    assert all(row["state"] == "COMPLETE" for row in shown["zoo"])
