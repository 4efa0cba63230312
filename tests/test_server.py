"""The REST API through HTTP (FastAPI's TestClient over the real app): searches run as real
`nas resume` processes on a real SQLite file or PostgreSQL schema."""

import base64
import io
import json
import os
import time
import warnings
import zipfile

import pytest
from PIL import Image
from servers import stop_runs_of, wait_for

from nas.config import parse_config

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def synthetic(name="api", architectures=8, seconds=0.0, **extra):
    return {"name": name, "seed": 1, "strategy": {"name": "random"},
            "evaluator": {"name": "synthetic", "synthetic_seconds": seconds},
            "budget": {"architectures": architectures}, "samples_per_step": 2, **extra}


@pytest.fixture
def client(tmp_path, database_url, monkeypatch):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NAS_THREADS", "1")
    monkeypatch.setenv("NAS_HEARTBEAT_STALE_SECONDS", "4")  # a dead run is found quickly
    settings = ServerSettings(api_token=TOKEN, database_url=database_url, runner="process",
                              home=tmp_path / "home", max_running_searches=1)
    try:
        with TestClient(create_app(settings)) as test_client:
            yield test_client
    finally:  # after the server: it launches no more
        stop_runs_of(tmp_path / "home")


def launch(client, config):
    response = client.post("/api/v1/searches", json=config, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready == {"status": "ok", "checks": {"database": "ok", "runner": "ok"}}
    text = client.get("/metrics").text
    assert 'nas_searches{status="queued"}' in text
    assert 'nas_http_requests_total{route="/readyz",status="200"}' in text


def test_a_request_that_fails_with_a_bug_is_counted_as_a_500(client):
    """An error no handler took escaped the metrics middleware uncounted: a 5xx alert on
    `nas_http_requests_total` could never fire. A route that fails as a bug would."""
    from fastapi.testclient import TestClient

    def broken() -> None:
        raise RuntimeError("a bug")

    client.app.add_api_route("/api/v1/broken", broken)
    answer = TestClient(client.app, raise_server_exceptions=False).get("/api/v1/broken")
    assert answer.status_code == 500 and "a bug" not in answer.text
    text = client.get("/metrics").text
    assert 'nas_http_requests_total{route="/api/v1/broken",status="500"} 1.0' in text, text


def test_a_launched_search_runs_and_its_architectures_page_by_reward(client):
    search_id = launch(client, synthetic(architectures=24))
    body = wait_for(client, search_id)
    assert body["architectures"] == 24 and body["progress"] == 1.0
    seen, cursor = [], None
    while True:
        params = {"limit": 5, "sort": "reward"} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/api/v1/searches/{search_id}/architectures", params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 24 and len({row["id"] for row in seen}) == 24
    rewards = [row["reward"] for row in seen]
    assert rewards == sorted(rewards, reverse=True)
    best = client.get(f"/api/v1/searches/{search_id}/best").json()
    assert best["reward"] == rewards[0] == body["best_reward"]
    detail = client.get(f"/api/v1/architectures/{best['id']}").json()
    assert detail["genotype"] == best["genotype"] and detail["state"] == "COMPLETE"
    by_step = client.get(f"/api/v1/searches/{search_id}/architectures",
                         params={"sort": "step", "limit": 100}).json()["items"]
    assert [row["step"] for row in by_step] == sorted(row["step"] for row in by_step)


def test_writes_need_the_token(client):
    config = synthetic()
    assert client.post("/api/v1/searches", json=config).status_code == 401
    wrong = client.post("/api/v1/searches", json=config,
                        headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"detail": "wrong API token"}
    assert client.get("/api/v1/searches").status_code == 200  # reads are open by default


def test_the_dashboard_session_needs_its_csrf_token(client):
    assert client.post("/session", json={"token": "nope"}).status_code == 401
    signed_in = client.post("/session", json={"token": TOKEN})
    assert signed_in.status_code == 200
    csrf = signed_in.json()["csrf_token"]
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    without = client.post("/api/v1/searches", json=synthetic())
    assert without.status_code == 403 and "X-CSRF-Token" in without.json()["detail"]
    forged = client.post("/api/v1/searches", json=synthetic(), headers={"X-CSRF-Token": "x"})
    assert forged.status_code == 403
    assert client.post("/api/v1/searches", json=synthetic(),
                       headers={"X-CSRF-Token": csrf}).status_code == 201


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/searches/nosuchsearch", 404), ("/api/v1/architectures/99999", 404),
    ("/api/v1/searches/nosuchsearch/architectures", 404),
    ("/api/v1/searches?cursor=!!!", 422), ("/api/v1/searches?status=lost", 422),
    (f"/api/v1/architectures/{2**63}", 404), (f"/api/v1/architectures/{-2**63 - 1}/logs", 404),
    (f"/api/v1/architectures/{2**64}/export", 404),
])
def test_bad_reads_are_json_errors(client, path, status):
    response = client.get(path)
    assert response.status_code == status and "detail" in response.json()


@pytest.mark.parametrize(("setting", "field"), [
    ({"samples_per_step": 0}, "samples_per_step"),
    ({"budget": {"architectures": True}}, '"architectures"], "msg": "Value error, expected a '
                                          'number, got true"'),
    ({"runner": {"cpus": 1e-300}}, "runner.cpus: Ray counts resources to 4 decimals"),
    ({"budget": {"architectures": 2**70}}, "budget.architectures: at most 10,000,000"),
])
def test_a_bad_config_names_the_field(client, setting, field):
    response = client.post("/api/v1/searches", json=synthetic() | setting, headers=AUTH)
    assert response.status_code == 422
    assert field in json.dumps(response.json()["detail"])
    assert client.get("/api/v1/searches").json()["items"] == []  # nothing stored


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/session", b'{"token": "\\ud800"}', "token"),
    ("/api/v1/searches", b'{"name": "\\ud800"}', "name"),
    ("/api/v1/searches", b'{"\\udfff": 1}', "unicode"),
    ("/api/v1/searches", b'{"budget": {"seconds": NaN}}', "seconds"),
    ("/api/v1/searches", b'{"budget": {"seconds": -Infinity}}', "seconds"),
    ("/api/v1/searches", b'{"budget": {"seconds": 1e400}}', "seconds"),
    ("/api/v1/searches", b'{"strategy": {"name": "reinforce", "lr": NaN}}', "lr"),
])
def test_a_body_json_cannot_echo_is_a_422_naming_the_field(client, path, body, field):
    """Lone surrogates and non-finite numbers parse, but no JSON answer can carry them: the
    422 names the field without echoing the value."""
    response = client.post(path, content=body,
                           headers=AUTH | {"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])


def test_a_huge_field_is_not_echoed_back(client):
    response = client.post("/api/v1/searches", json=synthetic(name="x" * 500_000),
                           headers=AUTH)
    assert response.status_code == 422 and "name" in response.text
    assert len(response.content) < 10_000


def test_page_cursors_out_of_the_columns_range_are_refused(client):
    search_id = launch(client, synthetic(architectures=2))
    wait_for(client, search_id)
    for value, row_id in ((0.5, 2**70), (2**64, 1), (float("inf"), 1)):
        cursor = base64.urlsafe_b64encode(json.dumps([value, row_id]).encode()).decode()
        response = client.get(f"/api/v1/searches/{search_id}/architectures",
                              params={"cursor": cursor})
        assert response.status_code == 422 and "cursor" in response.json()["detail"]
        assert client.get(f"/searches/{search_id}", params={"cursor": cursor}
                          ).status_code == 422


def test_a_dataset_path_outside_the_datasets_folder_is_refused(client, tmp_path):
    config = synthetic() | {"dataset": {"name": "imagefolder", "path": "/etc"}}
    response = client.post("/api/v1/searches", json=config, headers=AUTH)
    assert response.status_code == 422 and "outside the folders" in response.json()["detail"]
    assert client.get("/api/v1/searches").json()["items"] == []


def test_cancel_delete_and_resume_follow_the_lifecycle(client, tmp_path):
    search_id = launch(client, synthetic(architectures=400, seconds=0.05))
    wait_for(client, search_id, ("running",))
    assert client.delete(f"/api/v1/searches/{search_id}", headers=AUTH).status_code == 409
    cancelled = client.post(f"/api/v1/searches/{search_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    time.sleep(1.5)
    stopped_at = client.get(f"/api/v1/searches/{search_id}").json()["architectures"]
    time.sleep(1.5)
    assert client.get(f"/api/v1/searches/{search_id}").json()["architectures"] == stopped_at
    assert client.post(f"/api/v1/searches/{search_id}/cancel",
                       headers=AUTH).status_code == 409
    assert client.post(f"/api/v1/searches/{search_id}/resume",
                       headers=AUTH).json()["status"] == "queued"
    body = wait_for(client, search_id, timeout=180)
    assert body["architectures"] == 400
    rows = client.get(f"/api/v1/searches/{search_id}/architectures",
                      params={"limit": 1000, "sort": "step"}).json()["items"]
    assert len(rows) == 400 and {row["state"] for row in rows} == {"COMPLETE"}
    weights = tmp_path / "home" / "weights" / search_id
    weights.mkdir(parents=True)
    (weights / "cell.pt").write_bytes(b"weights")
    assert client.delete(f"/api/v1/searches/{search_id}", headers=AUTH).status_code == 204
    assert client.get(f"/api/v1/searches/{search_id}").status_code == 404
    assert not weights.exists()  # its files go with it


def test_a_search_resumed_at_once_after_its_cancel_is_not_stopped_by_that_cancel(client):
    """The cancelled run may still be winding down when the resume is admitted: the new run
    waits for it, and the cancel's hard stop never reaches the new run."""
    search_id = launch(client, synthetic(architectures=120, seconds=0.05))
    wait_for(client, search_id, ("running",))
    assert client.post(f"/api/v1/searches/{search_id}/cancel", headers=AUTH).status_code == 200
    assert client.post(f"/api/v1/searches/{search_id}/resume",
                       headers=AUTH).json()["status"] == "queued"
    body = wait_for(client, search_id, ("finished", "interrupted", "failed", "cancelled"),
                    timeout=180)
    assert (body["status"], body["architectures"]) == ("finished", 120)
    rows = client.get(f"/api/v1/searches/{search_id}/architectures",
                      params={"limit": 1000, "sort": "step"}).json()["items"]
    assert len(rows) == 120 and {row["state"] for row in rows} == {"COMPLETE"}


def test_searches_beyond_the_cap_wait_their_turn(client):
    ids = [launch(client, synthetic(name=f"s{index}", architectures=6, seconds=0.2))
           for index in range(3)]
    most_running = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = [client.get(f"/api/v1/searches/{search_id}").json()["status"]
                    for search_id in ids]
        most_running = max(most_running, statuses.count("running"))
        if statuses == ["finished"] * 3:
            break
        time.sleep(0.1)
    assert statuses == ["finished"] * 3 and most_running == 1


def test_a_search_cancelled_while_its_run_starts_stays_cancelled_and_holds_its_slot(client):
    """The run launched for a queued search may not have claimed it yet when it is cancelled:
    it must not run the search after all, nor may the next queued search start beside it
    (the cap is 1 here)."""
    first = launch(client, synthetic(name="cancelled", architectures=6, seconds=0.5))
    second = launch(client, synthetic(name="next", architectures=6, seconds=0.2))
    time.sleep(1.5)  # its `nas resume` has been launched and is importing
    assert client.post(f"/api/v1/searches/{first}/cancel", headers=AUTH).status_code == 200
    seen = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = tuple(client.get(f"/api/v1/searches/{search_id}").json()["status"]
                         for search_id in (first, second))
        seen.add(statuses)
        if statuses[1] == "finished":
            break
        time.sleep(0.1)
    assert {status for status, _ in seen} == {"cancelled"}, seen
    assert statuses == ("cancelled", "finished")
    assert client.get(f"/api/v1/searches/{first}").json()["architectures"] == 0
    kinds = [line[7:] for line in client.get(f"/api/v1/searches/{first}/events").text
             .splitlines() if line.startswith("event: ")]
    assert "started" not in kinds and "claimed" not in kinds


def test_events_stream_to_the_end_and_resume_from_last_event_id(client):
    search_id = launch(client, synthetic(architectures=4))
    wait_for(client, search_id)
    with client.stream("GET", f"/api/v1/searches/{search_id}/events") as stream:
        text = "".join(stream.iter_text())
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    kinds = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert "finished" in kinds and kinds[-1] == "end" and ids == sorted(ids)
    assert kinds.count("architecture") == 4 and kinds[0] == "status"  # each scored one
    with client.stream("GET", f"/api/v1/searches/{search_id}/events",
                       headers={"Last-Event-ID": str(ids[1])}) as stream:
        rest = "".join(stream.iter_text())
    assert [int(line[4:]) for line in rest.splitlines() if line.startswith("id: ")] == ids[2:]


def image_zip(members):
    """A zip of `members` ({name: bytes}, or (name, bytes) pairs: a name may repeat)."""
    buffer = io.BytesIO()
    pairs = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name
        for name, data in pairs:
            archive.writestr(name, data)
    return buffer.getvalue()


def png():
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_datasets_upload_and_hostile_archives(client, tmp_path):
    good = {f"{label}/{index}.png": png() for label in ("cats", "dogs") for index in range(3)}
    files = {"file": ("photos.zip", image_zip(good), "application/zip")}
    assert client.post("/api/v1/datasets", files=files).status_code == 401
    created = client.post("/api/v1/datasets", files=files, headers=AUTH)
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["classes"] == ["cats", "dogs"] and dataset["images"] == 6
    assert client.get("/api/v1/datasets").json() == [dataset]
    hostile = {
        "traversal": image_zip(good | {"../../evil.png": png()}),
        "absolute": image_zip(good | {"/tmp/evil.png": png()}),
        "not an archive": os.urandom(2048),
        "one class": image_zip({"cats/0.png": png()}),
        "broken image": image_zip(good | {"dogs/x.png": b"not a png"}),
        "a member twice": image_zip([*good.items(), ("cats/0.png", png())]),
        "a file where a folder is": image_zip([("birds", b"x"), *good.items(),
                                               ("birds/0.png", png())]),
        "a folder where a file is": image_zip([*good.items(), ("cats/0.png/", b"")]),
    }
    for reason, content in hostile.items():
        response = client.post("/api/v1/datasets", headers=AUTH,
                               files={"file": ("up.zip", content, "application/zip")})
        assert response.status_code == 422, (reason, response.text)
        assert response.json()["detail"].startswith("dataset refused: "), reason
    assert client.get("/api/v1/datasets").json() == [dataset]
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "home" / "evil.png").exists()
    config = synthetic() | {"dataset": {"name": "imagefolder", "id": dataset["id"]}}
    assert client.post("/api/v1/searches", json=config, headers=AUTH).status_code == 201


def test_a_run_that_dies_is_resumed_by_the_server(client, monkeypatch):
    """kill -9 of the `nas resume` process running a search: its heartbeat goes stale, the
    server's scheduler resumes it from its checkpoint, and it finishes with every row once."""
    search_id = launch(client, synthetic(architectures=60, seconds=0.1))
    wait_for(client, search_id, ("running",))
    deadline = time.monotonic() + 60
    while client.get(f"/api/v1/searches/{search_id}").json()["architectures"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    runs = client.app.state.runs.launcher._processes
    deadline = time.monotonic() + 30
    while search_id not in runs and time.monotonic() < deadline:
        time.sleep(0.1)
    runs[search_id].kill()
    body = wait_for(client, search_id, timeout=240)
    assert body["architectures"] == 60
    rows = client.get(f"/api/v1/searches/{search_id}/architectures",
                      params={"limit": 1000, "sort": "step"}).json()["items"]
    assert len(rows) == 60 and {row["state"] for row in rows} == {"COMPLETE"}
    with client.stream("GET", f"/api/v1/searches/{search_id}/events") as stream:
        text = "".join(stream.iter_text())
    assert "event: claimed" in text  # written only when a claim takes over a dead owner


def test_a_failed_candidates_log_has_its_error_and_traceback(client):
    from nas.data import load_dataset
    from nas.evaluators import StandaloneEvaluator
    from nas.search import create_search
    from searchspace.genotype import Genotype

    broken = Genotype(normal=((0, "no_such_op", 1, "identity"),),
                      reduction=((0, "identity", 1, "identity"),))
    config = parse_config({"evaluator": {"name": "standalone", "epochs": 1}})
    failed = StandaloneEvaluator(config, load_dataset("digits", limit=100)).evaluate_one(broken)
    assert failed.state == "FAIL" and "Traceback" in failed.metrics.traceback
    store = client.app.state.store
    record = create_search(store, parse_config(synthetic()))
    [architecture_id] = store.add_architectures(record.id, 0, [broken], "standalone")
    store.finish_architecture(architecture_id, state="FAIL", error=failed.error,
                              metrics=failed.metrics)
    logs = client.get(f"/api/v1/architectures/{architecture_id}/logs").json()
    assert logs["state"] == "FAIL" and logs["error"] == failed.error
    assert logs["log"][0] == f"error: {failed.error}" and "Traceback" in logs["log"][1]
    assert any("unknown op 'no_such_op'" in line for line in logs["log"][1:])


def test_the_zoo_lists_the_classics_with_their_sizes(client):
    from searchspace.complexity import count_parameters
    from searchspace.zoo import create_network

    rows = {row["name"]: row for row in client.get("/api/v1/zoo").json()}
    assert {"resnet20", "mobilenet_v2", "nasnet_a", "enas"} <= set(rows)
    resnet20 = create_network("resnet20", num_classes=10, input_size=32)
    assert rows["resnet20"]["params"] == count_parameters(resnet20) == 269_722
    assert rows["resnet20"]["flops"] > rows["lenet5"]["flops"] > 0
    assert client.get("/api/v1/zoo", params={"cells": 0}).status_code == 422


def test_a_hostile_name_leaves_the_downloaded_export_unchanged(client):
    """Two searches alike but for their names: the `.py` downloads differ only in the
    `SOURCE = ...` line that names them, and the hostile one is escaped there."""
    from test_bad_input import HOSTILE, _without_source

    downloads = []
    for name in ("plain", HOSTILE):
        search_id = launch(client, synthetic(name=name, architectures=4))
        wait_for(client, search_id)
        best = client.get(f"/api/v1/searches/{search_id}/best").json()
        response = client.get(f"/api/v1/architectures/{best['id']}/export",
                              params={"format": "py", "stem": "model"})
        assert response.status_code == 200 and response.headers["content-disposition"] == (
            'attachment; filename="model.py"')
        downloads.append(response.text)
    (plain_code, plain_source), (hostile_code, hostile_source) = map(_without_source, downloads)
    assert plain_code == hostile_code and plain_source != hostile_source
    namespace: dict = {}
    exec(compile(downloads[1], "model.py", "exec"), namespace)  # it imports: nothing escaped
    assert HOSTILE in namespace["SOURCE"]


def test_a_search_runs_on_an_uploaded_dataset(client):
    good = {f"{label}/{index}.png": png() for label in ("cats", "dogs") for index in range(8)}
    dataset = client.post("/api/v1/datasets", headers=AUTH, files={
        "file": ("photos.zip", image_zip(good), "application/zip")}).json()
    config = {"name": "on-upload", "seed": 0, "strategy": {"name": "random"},
              "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 4},
              "dataset": {"name": "imagefolder", "id": dataset["id"], "input_size": 16},
              "network": {"cells": 1, "channels": 4}, "space": {"blocks": 2},
              "budget": {"architectures": 2}, "samples_per_step": 1}
    search_id = launch(client, config)
    body = wait_for(client, search_id, ("finished", "failed"), timeout=240)
    assert body["status"] == "finished", body["error"]
    rows = client.get(f"/api/v1/searches/{search_id}/architectures").json()["items"]
    assert [row["state"] for row in rows] == ["COMPLETE", "COMPLETE"]
