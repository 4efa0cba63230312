"""`nas --server URL`: the search commands against a real `nas serve`, with the token and no
database of their own (NAS_DATABASE_URL points nowhere usable)."""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from servers import NAS, TOKEN, Server, free_port, stop_runs_of


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("served")).start()
    yield running
    running.stop()


def nas(server_url, *args, token=TOKEN, tmp_path=None):
    env = {**os.environ, "NAS_API_TOKEN": token, "NAS_SERVER": server_url,
           "NAS_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    return subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)


def test_search_show_searches_and_export_through_the_api(server, tmp_path):
    launched = nas(server.url, "search", "--evaluator", "synthetic", "--strategy", "random",
                   "--budget-architectures", "8", "--name", "remote", "--json")
    assert launched.returncode == 0, launched.stderr
    summary = json.loads(launched.stdout)
    assert summary["status"] == "finished" and summary["architectures"] == 8
    search_id = summary["search_id"]
    listed = json.loads(nas(server.url, "searches", "--json").stdout)
    assert search_id in [row["search_id"] for row in listed]
    shown = json.loads(nas(server.url, "show", search_id, "--top", "3", "--json").stdout)
    assert len(shown["top"]) == 3 and shown["top"][0]["reward"] == summary["best_reward"]
    text = nas(server.url, "show", search_id).stdout
    assert f"search {search_id} (remote): finished, 8 architectures" in text
    exported = nas(server.url, "export", "best", "-o", str(tmp_path / "best.py"), "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["search_id"] == search_id
    run = subprocess.run([sys.executable, "-c", "import best, torch; "
                          "print(best.build_model()(torch.zeros(1, 1, 8, 8)).shape[1])"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "10", run.stderr


def test_cancel_resume_and_delete_through_the_api(server):
    config = ["--evaluator", "synthetic", "--budget-architectures", "4", "--json"]
    search_id = json.loads(nas(server.url, "search", *config).stdout)["search_id"]
    assert nas(server.url, "cancel", search_id).returncode == 2  # finished: 409, one line
    deleted = nas(server.url, "delete", search_id)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    shown = nas(server.url, "show", search_id)
    assert shown.returncode == 2 and "unknown search id" in shown.stderr


@pytest.mark.parametrize(("arguments", "token", "message"), [
    (["show", "nosuchsearch"], TOKEN, "unknown search id 'nosuchsearch'"),
    (["search", "--evaluator", "synthetic"], "wrong", "wrong API token"),
    (["search", "--evaluator", "synthetic", "--budget-architectures", "0"], TOKEN,
     "budget.architectures"),
])
def test_refusals_are_one_line(server, arguments, token, message):
    result = nas(server.url, *arguments, token=token)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_an_unreachable_server_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    result = nas(url, "searches")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "cannot reach the server" in lines[0]


@pytest.mark.slow
def test_baselines_through_the_api_train_on_the_server_and_show(server):
    import time

    search_id = json.loads(nas(server.url, "search", "--evaluator", "synthetic",
                               "--budget-architectures", "4", "--json").stdout)["search_id"]

    queued = nas(server.url, "baselines", "--search", search_id, "--arch", "lenet5", "--json")
    refused = nas(server.url, "baselines", "--search", search_id, token="wrong")

    assert queued.returncode == 0, queued.stderr
    (row,) = json.loads(queued.stdout)["baselines"]
    assert row["name"] == "lenet5" and row["state"] == "WAITING"
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        (shown,) = json.loads(nas(server.url, "show", search_id, "--json").stdout)["zoo"]
        if shown["state"] not in ("WAITING", "RUNNING"):
            break
        time.sleep(2)
    assert shown["name"] == "lenet5" and shown["state"] == "COMPLETE", shown


class ForeignServer:
    """A real HTTP server on 127.0.0.1 that is not the nas-service API: every request gets the
    same answer (a proxy's redirect, a web page, JSON of another shape)."""

    def __init__(self, status, content_type, body, headers=(), events=None):
        answer = (status, content_type, body, dict(headers))

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                code, kind, content, extra = (
                    (*events, {}) if events and self.path.endswith("/events") else answer)
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(("answer", "arguments", "message"), [
    ((301, "text/html", b"", {"Location": "https://example.org/"}), ("delete", "abc"),
     "redirect to https://example.org/"),
    ((200, "text/html", b"<html>hello</html>", {}), ("delete", "abc"), "not the nas-service"),
    ((200, "text/html", b"<html>hello</html>", {}), ("searches",), "text/html"),
    ((200, "application/json", b"[1, 2]", {}), ("searches",), "cannot read"),
    ((200, "application/json", b'{"items": "zz"}', {}), ("searches",), "cannot read"),
    ((200, "application/json", b'{"items": [{"id": "x"}]}', {}), ("searches",), "cannot read"),
    ((200, "application/json", b"{not json", {}), ("show", "abc"), "cannot read"),
])
def test_a_server_that_is_not_the_api_is_one_line_and_nothing_claims_success(answer, arguments,
                                                                            message):
    foreign = ForeignServer(*answer)
    try:
        result = nas(foreign.url, *arguments)
    finally:
        foreign.close()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "deleted" not in result.stdout


SEARCH = json.dumps({"id": "abc", "status": "queued", "budget": {"architectures": 4}}).encode()


@pytest.mark.parametrize(("events", "message"), [
    ((200, "text/html", b"<html>hello</html>"), "text/html to GET /api/v1/searches/abc/events"),
    ((200, "text/event-stream", b'event: status\ndata: {"status": "running"}\n\n'),
     "stopped before the search ended"),
])
def test_following_a_stream_that_is_not_the_apis_or_stops_early_is_one_line(events, message):
    """`nas resume` follows the search's events: a page that is no event stream, or a stream
    that stops before the search's `end` (a server that went away), is said, not a success."""
    foreign = ForeignServer(200, "application/json", SEARCH, events=events)
    try:
        result = nas(foreign.url, "resume", "abc")
    finally:
        foreign.close()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_malformed_server_url_is_one_line():
    result = nas("http://[::1", "searches")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_search_that_fails_on_the_server_exits_2_with_its_reason(server, tmp_path):
    """It printed "search ... failed" with exit 0, and the reason only in --json."""
    config = tmp_path / "failing.yaml"  # every candidate out of memory: the search fails
    config.write_text("strategy: {name: random}\nspace: {blocks: 2}\n"
                      "evaluator: {name: standalone, epochs: 1, memory_limit_mb: 64}\n"
                      "dataset: {name: digits, limit: 200}\nnetwork: {cells: 1, channels: 1024}\n"
                      "budget: {architectures: 1}\nsamples_per_step: 1\n")
    result = nas(server.url, "search", "-c", str(config))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "failed: NoCandidateScored: all 1 candidates failed" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["delete", "show", "cancel"])
def test_a_search_id_is_never_read_as_another_path(server, command):
    """`nas delete x/../ID` deleted search ID."""
    config = ["--evaluator", "synthetic", "--budget-architectures", "2", "--json"]
    search_id = json.loads(nas(server.url, "search", *config).stdout)["search_id"]
    for hostile in (f"x/../{search_id}", f"{search_id}?x", "..", f"{search_id}/"):
        result = nas(server.url, command, hostile)
        assert result.returncode == 2, (hostile, result.stdout, result.stderr)
        assert f"unknown search id {hostile!r}" in result.stderr, result.stderr
    assert nas(server.url, "show", search_id).returncode == 0  # still there


@pytest.mark.slow
def test_following_a_frozen_server_gives_up_after_a_minute_of_silence(tmp_path):
    """The event stream had no read timeout: a stopped (SIGSTOP) server or a half-open
    connection held `nas search` silent for ever. The server pings every 15 s."""
    frozen = Server(tmp_path).start()
    config = tmp_path / "slow.yaml"
    config.write_text("evaluator: {name: synthetic, synthetic_seconds: 2}\n"
                      "budget: {architectures: 200}\nsamples_per_step: 1\n")
    env = {**os.environ, "NAS_API_TOKEN": TOKEN, "NAS_SERVER": frozen.url}
    follower = subprocess.Popen([*NAS, "search", "-c", str(config)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(15)  # launched and following its events
        frozen.process.send_signal(signal.SIGSTOP)
        began = time.monotonic()
        _, stderr = follower.communicate(timeout=150)
        waited = time.monotonic() - began
    finally:
        frozen.process.send_signal(signal.SIGCONT)
        follower.kill()
        frozen.stop()
        stop_runs_of(tmp_path / "home")
    assert follower.returncode == 2, stderr
    assert "lost the server" in stderr and "Traceback" not in stderr, stderr
    assert 50 < waited < 120, waited


def test_export_ranks_beyond_100_and_a_rank_of_0_through_the_api(server, tmp_path):
    """Ranks above 100 could not be exported from a server ("limit: ... <= 100"), and a rank
    of 0 was refused as "limit: Input should be greater than or equal to 1"."""
    config = ["--evaluator", "synthetic", "--budget-architectures", "160", "--json"]
    search_id = json.loads(nas(server.url, "search", *config).stdout)["search_id"]
    exported = nas(server.url, "export", "best", "--search", search_id, "--rank", "150",
                   "-o", str(tmp_path / "r150.py"), "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["rank"] == 150
    for rank, message in (("0", "rank 0 is out of range"), ("1001", "from 1 to 1000"),
                          ("161", "has 160 ranked architecture(s)")):
        refused = nas(server.url, "export", "best", "--search", search_id, "--rank", rank,
                      "-o", str(tmp_path / "x.py"))
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
