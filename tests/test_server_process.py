"""The service as a user runs it: `nas serve` (uvicorn) on 127.0.0.1, driven over HTTP with
httpx: an ENAS search on digits followed by SSE to its end, its architectures paged, the `.py`
export run in a fresh interpreter; the server killed and started again while a search runs."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from servers import TOKEN, Server, free_port

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
ENAS = {"name": "enas-api", "seed": 0, "strategy": {"name": "reinforce"},
        "evaluator": {"name": "enas", "warmup_epochs": 1, "steps_per_epoch": 2,
                      "derive_samples": 4, "derive_top": 2},
        "dataset": {"name": "digits"}, "network": {"cells": 1, "channels": 8},
        "budget": {"architectures": 24}, "samples_per_step": 4}


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path).start()
    yield running
    running.stop()


def follow(url, search_id, timeout=300):
    """The events of a search's SSE stream, to its `end`."""
    events, kind = [], None
    with httpx.stream("GET", f"{url}/api/v1/searches/{search_id}/events",
                      timeout=httpx.Timeout(timeout, connect=10)) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if kind == "end":
                    break
    return events


def test_a_last_event_id_that_is_no_number_streams_from_the_start(server):
    """`Last-Event-ID: ²` (latin-1 0xb2: `str.isdigit()` takes it, `int()` does not)."""
    synthetic = {"name": "sse", "evaluator": {"name": "synthetic"}, "strategy": {"name": "random"},
                 "budget": {"architectures": 3}, "samples_per_step": 1}
    search_id = httpx.post(f"{server.url}/api/v1/searches", json=synthetic, headers=AUTH,
                           timeout=30).json()["id"]
    assert follow(server.url, search_id)[-1][0] == "end"
    streams = []
    for header in ({}, {"Last-Event-ID": b"\xb2"}):
        with httpx.stream("GET", f"{server.url}/api/v1/searches/{search_id}/events",
                          headers=header, timeout=30) as stream:
            streams.append([line for line in stream.iter_lines() if line.startswith("id: ")])
    assert streams[0] and streams[1] == streams[0]


def test_concurrent_resumes_queue_a_search_once_and_log_only_that_one(server):
    synthetic = {"name": "resumes", "evaluator": {"name": "synthetic", "synthetic_seconds": 0.05},
                 "strategy": {"name": "random"}, "budget": {"architectures": 400},
                 "samples_per_step": 1}
    search_id = httpx.post(f"{server.url}/api/v1/searches", json=synthetic, headers=AUTH,
                           timeout=30).json()["id"]
    action = f"{server.url}/api/v1/searches/{search_id}"
    assert httpx.post(f"{action}/cancel", headers=AUTH, timeout=30).status_code == 200
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(lambda _: httpx.post(f"{action}/resume", headers=AUTH,
                                                     timeout=30).status_code, range(6)))
    assert codes == [200] + [409] * 5
    assert httpx.post(f"{action}/cancel", headers=AUTH, timeout=30).status_code == 200
    kinds = [kind for kind, _ in follow(server.url, search_id)]
    assert kinds.count("resume") == 1 and kinds.count("cancel") == 2


def test_head_answers_every_page_and_read_as_its_get_does(server):
    for path in ("/", "/healthz", "/readyz", "/metrics", "/api/v1/searches",
                 "/static/dashboard.css"):
        got = httpx.get(f"{server.url}{path}", timeout=120)
        head = httpx.head(f"{server.url}{path}", timeout=120)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert httpx.head(f"{server.url}/api/v1/searches/nosuch", timeout=30).status_code == 404


def raw_answer(server, request: bytes, timeout=20.0) -> str:
    """The status line the server answers to `request` sent as is (its body cut short)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as connection:
        connection.sendall(request)
        try:
            return connection.recv(4096).decode("latin-1").split("\r\n", 1)[0]
        except TimeoutError:
            return "no answer: the server waits for the body"


@pytest.fixture
def small_uploads(tmp_path):
    started = Server(tmp_path)
    started.env["NAS_MAX_UPLOAD_MB"] = "1"
    started.start()
    yield started
    started.stop()


def test_a_write_is_refused_before_its_body_is_read(small_uploads):
    """A client without the token, or with a body beyond the route's limit, gets its answer
    from the headers alone: the server never receives the announced 300 MB."""
    head = ("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
            "Content-Length: 314572800\r\n{auth}\r\n")
    upload = {"path": "/api/v1/datasets", "kind": "multipart/form-data; boundary=b"}
    config = {"path": "/api/v1/searches", "kind": "application/json"}
    bearer = f"Authorization: Bearer {TOKEN}\r\n"
    for fields, auth, status in ((upload, "", "401"), (config, "", "401"),
                                 (upload, bearer, "413"), (config, bearer, "413")):
        request = head.format(auth=auth, **fields).encode() + b"--b\r\n" + b"x" * 1000
        assert raw_answer(small_uploads, request).split(" ")[1:2] == [status], (fields, auth)


def test_a_chunked_body_is_cut_off_past_the_limit(small_uploads):
    def chunks(head=b""):
        yield head
        for _ in range(64):  # 4 MiB against the 1 MiB limit
            yield os.urandom(1 << 16)

    part = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n'
            b"Content-Type: application/zip\r\n\r\n")
    response = httpx.post(f"{small_uploads.url}/api/v1/datasets", content=chunks(part),
                          headers=AUTH | {"Content-Type": "multipart/form-data; boundary=b"},
                          timeout=60)
    assert response.status_code == 413 and "larger" in response.json()["detail"]
    big = httpx.post(f"{small_uploads.url}/api/v1/searches", headers=AUTH, timeout=60,
                     content=chunks())
    assert big.status_code == 413
    assert httpx.get(f"{small_uploads.url}/readyz", timeout=10).status_code == 200


@pytest.mark.slow
def test_an_enas_search_followed_paged_and_exported_over_http(server, tmp_path):
    launched = httpx.post(f"{server.url}/api/v1/searches", json=ENAS, headers=AUTH, timeout=30)
    assert launched.status_code == 201, launched.text
    search_id = launched.json()["id"]
    events = follow(server.url, search_id)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and "finished" in kinds
    statuses = [data["status"] for kind, data in events if kind == "status"]
    assert statuses[-1] == "finished"
    search = httpx.get(f"{server.url}/api/v1/searches/{search_id}").json()
    rows, cursor = [], None
    while True:
        page = httpx.get(f"{server.url}/api/v1/searches/{search_id}/architectures",
                         params={"limit": 7} | ({"cursor": cursor} if cursor else {})).json()
        rows += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert search["architectures"] == 24 and len(rows) == 24 + 2  # candidates + derived
    assert kinds.count("architecture") == len(rows)
    best = httpx.get(f"{server.url}/api/v1/searches/{search_id}/best").json()
    assert best["role"] == "derived"
    download = httpx.get(f"{server.url}/api/v1/architectures/{best['id']}/export",
                         params={"format": "py"}, timeout=120)
    assert download.status_code == 200
    module = tmp_path / "exported" / "model.py"
    module.parent.mkdir()
    module.write_bytes(download.content)
    check = ("import sys, torch, model; net = model.build_model(); net.eval(); "
             "print(tuple(net(torch.zeros(2, 1, 8, 8)).shape), "
             "any(name.split('.')[0] in ('nas', 'searchspace') for name in sys.modules))")
    ran = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.'); "
                          f"{check}"], cwd=module.parent, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["(2,", "10)", "False"]


@pytest.mark.slow
def test_searches_outlive_a_killed_server(server, tmp_path):
    config = {"name": "survivor", "seed": 2, "strategy": {"name": "evolution"},
              "evaluator": {"name": "synthetic", "synthetic_seconds": 0.05},
              "budget": {"architectures": 200}, "samples_per_step": 2}
    ids = [httpx.post(f"{server.url}/api/v1/searches", json=config | {"name": f"s{index}"},
                      headers=AUTH, timeout=30).json()["id"] for index in range(2)]
    deadline = time.monotonic() + 60
    while any(httpx.get(f"{server.url}/api/v1/searches/{search_id}").json()["status"]
              != "running" for search_id in ids):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    server.kill()
    server.start()
    deadline = time.monotonic() + 240
    while True:
        bodies = [httpx.get(f"{server.url}/api/v1/searches/{search_id}").json()
                  for search_id in ids]
        if all(body["status"] == "finished" for body in bodies) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [body["status"] for body in bodies] == ["finished", "finished"]
    for search_id in ids:
        rows = httpx.get(f"{server.url}/api/v1/searches/{search_id}/architectures",
                         params={"limit": 1000, "sort": "step"}).json()["items"]
        assert len(rows) == 200 and {row["state"] for row in rows} == {"COMPLETE"}


def test_a_public_host_needs_a_token(tmp_path):
    env = {**os.environ, "NAS_HOME": str(tmp_path), "NAS_API_TOKEN": ""}
    result = subprocess.run([*NAS, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "NAS_API_TOKEN" in result.stderr


def test_no_migrate_needs_a_database_upgraded_by_nas_db_upgrade(tmp_path):
    env = {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_DATABASE_URL": ""}
    refused = subprocess.run([*NAS, "serve", "--no-migrate", "--port", str(free_port())],
                             env=env, capture_output=True, text=True, timeout=120)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "nas db upgrade" in lines[0]
    upgraded = subprocess.run([*NAS, "db", "upgrade"], env=env, capture_output=True, text=True,
                              timeout=120)
    assert upgraded.returncode == 0 and "schema up to date" in upgraded.stdout
    server = Server(tmp_path, "--no-migrate").start()  # the same NAS_HOME, now migrated
    try:
        assert httpx.get(f"{server.url}/api/v1/searches").json()["items"] == []
    finally:
        server.stop()


def test_an_idle_connection_stays_open_longer_than_clients_keep_theirs(server):
    """Clients and proxies keep idle connections for a while to reuse them (httpx 5 s, nginx
    and cloud load balancers 60 s). The server must keep them longer, or a request sent just as
    it closes one fails (uvicorn's default, 5 s: ReadError in bench/load.py, a proxy's 502)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        statuses = []
        for wait in (0, 6):  # the second request after 6 s idle, on the same connection
            time.sleep(wait)
            connection.request("GET", "/healthz")
            if wait == 0:
                opened = connection.sock
            response = connection.getresponse()  # RemoteDisconnected if it was closed
            statuses.append(response.status)
            response.read()
        assert statuses == [200, 200] and connection.sock is opened
    finally:
        connection.close()


@pytest.mark.parametrize("value", ["0", "3601", "soon"])
def test_a_bad_keep_alive_is_refused_naming_the_option(tmp_path, value):
    env = {**os.environ, "NAS_HOME": str(tmp_path), "NAS_DATABASE_URL": ""}
    result = subprocess.run([*NAS, "serve", "--port", str(free_port()), "--keep-alive", value],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--keep-alive" in result.stderr, result.stderr
    assert not (tmp_path / "nas.db").exists()  # refused before anything was opened


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("NAS_RESUME_LIMIT", "2.7", "NAS_RESUME_LIMIT must be a whole number"),  # a traceback, exit 3
    ("NAS_HEARTBEAT_STALE_SECONDS", "-1", "NAS_HEARTBEAT_STALE_SECONDS must be finite"),
    ("NAS_THREADS", "many", "NAS_THREADS='many'"),  # served, then failed every search it ran
])
def test_a_bad_run_setting_is_refused_before_serving(tmp_path, variable, value, message):
    env = {**os.environ, "NAS_HOME": str(tmp_path), "NAS_DATABASE_URL": "",
           "NAS_RUNNER": "process", variable: value}
    result = subprocess.run([*NAS, "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nas.db").exists()


@pytest.mark.parametrize(("path", "body", "key"), [
    ("/api/v1/searches", b'{"evaluator": {"name": "synthetic"}, "budget": {"architectures": 2},'
                         b' "budget": {"architectures": 4000}}', "budget"),
    ("/api/v1/searches", b'{"evaluator": {"name": "synthetic", "name": "enas"}}', "name"),
    ("/session", b'{"token": "x", "token": "process-token"}', "token"),
])
def test_a_json_body_with_a_key_twice_is_refused_naming_it(server, path, body, key):
    """The last value silently won (a search of 4000 architectures, not 2)."""
    response = httpx.post(f"{server.url}{path}", content=body, timeout=30,
                          headers=AUTH | {"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert f"key '{key}' given twice" in response.json()["detail"][0]["msg"]
    assert httpx.get(f"{server.url}/api/v1/searches", headers=AUTH,
                     timeout=30).json()["items"] == []


def _tar_with_a_name_that_is_not_utf8() -> bytes:
    import io
    import tarfile

    from PIL import Image

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ("ants/0.png", "b\udcffes/0.png"):  # the bytes b"b\xffes"
            image = io.BytesIO()
            Image.new("RGB", (8, 8)).save(image, format="PNG")
            info = tarfile.TarInfo(name)
            info.size = len(image.getvalue())
            archive.addfile(info, io.BytesIO(image.getvalue()))
    return buffer.getvalue()


def test_an_upload_naming_a_class_in_bytes_that_are_not_utf8_is_a_422(server):
    """It was a 500, and it was stored: every `GET /api/v1/datasets` after it was a 500."""
    response = httpx.post(f"{server.url}/api/v1/datasets", headers=AUTH, timeout=60,
                          files={"file": ("up.tar", _tar_with_a_name_that_is_not_utf8(),
                                          "application/x-tar")})
    assert response.status_code == 422 and "not UTF-8 text" in response.text, response.text
    listing = httpx.get(f"{server.url}/api/v1/datasets", headers=AUTH, timeout=30)
    assert listing.status_code == 200 and listing.json() == []


@pytest.mark.parametrize("page", ["/", "/api/v1/searches"])
def test_a_session_cookie_that_is_not_ascii_is_not_signed_in(server, page):
    """A 500 on every page, for anyone (hmac.compare_digest refuses non-ASCII text)."""
    response = httpx.get(f"{server.url}{page}", timeout=30,
                         headers={"Cookie": "nas_session=x.\u00e9".encode()})
    assert response.status_code in (200, 401), response.text
    written = httpx.post(f"{server.url}/api/v1/searches", json={}, timeout=30,
                         headers={"Cookie": "nas_session=x.\u00e9".encode()})
    assert written.status_code == 401, written.text


@pytest.mark.parametrize("last", ["9223372036854775807", "9" * 30])
def test_a_last_event_id_beyond_every_id_resends_nothing(server, last):
    """19 digits or more were read as 0: the whole log was sent again."""
    synthetic = {"name": "sse", "evaluator": {"name": "synthetic"}, "strategy": {"name": "random"},
                 "budget": {"architectures": 2}, "samples_per_step": 1}
    search_id = httpx.post(f"{server.url}/api/v1/searches", json=synthetic, headers=AUTH,
                           timeout=30).json()["id"]
    assert follow(server.url, search_id)[-1][0] == "end"
    with httpx.stream("GET", f"{server.url}/api/v1/searches/{search_id}/events",
                      headers={"Last-Event-ID": last}, timeout=30) as stream:
        lines = list(stream.iter_lines())
    assert not [line for line in lines if line.startswith("id: ")], lines
    assert "event: end" in lines


def test_a_cancelled_search_is_deleted_once_its_run_has_stopped(server):
    """Deleted while its run still wrote (cancel, then delete at once): the run's writes and
    the event stream of a follower raised tracebacks in the log, and the stream had no end."""
    slow = {"name": "slow", "evaluator": {"name": "synthetic", "synthetic_seconds": 2},
            "budget": {"architectures": 100}, "samples_per_step": 1}
    search_id = httpx.post(f"{server.url}/api/v1/searches", json=slow, headers=AUTH,
                           timeout=30).json()["id"]
    with ThreadPoolExecutor(1) as pool:
        followed = pool.submit(follow, server.url, search_id, 120)
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/api/v1/searches/{search_id}",
                        timeout=30).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        url = f"{server.url}/api/v1/searches/{search_id}"
        assert httpx.post(f"{url}/cancel", headers=AUTH, timeout=30).status_code == 200
        refused = httpx.delete(url, headers=AUTH, timeout=30)
        assert refused.status_code == 409 and "still stopping" in refused.text, refused.text
        while (deleted := httpx.delete(url, headers=AUTH, timeout=30)).status_code == 409:
            assert time.monotonic() < deadline, deleted.text
            time.sleep(0.5)
        assert deleted.status_code == 204, deleted.text
        assert followed.result(timeout=60)[-1][0] == "end"
    time.sleep(1)
    assert "Traceback" not in server.log.read_text()


@pytest.mark.parametrize("query", ["status=finished&status=queued", "limit=1&limit=2"])
def test_a_query_parameter_given_twice_is_refused_naming_it(server, query):
    """The last value was taken without a word (`status` twice listed only queued searches)."""
    name = query.split("=")[0]
    answer = httpx.get(f"{server.url}/api/v1/searches?{query}", timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == [{"loc": ["query", name], "type": "value_error",
                                        "msg": "given more than once: give it once"}]
    page = httpx.get(f"{server.url}/?{query}", timeout=30)  # a page: the same, as a page
    assert page.status_code == 422 and "text/html" in page.headers["content-type"]
