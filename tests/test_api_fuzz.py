"""schemathesis over the app's OpenAPI spec: for any generated input, with and without the
token, no 500 and no response that breaks the spec (status code documented, body and headers
as declared).

The app runs in-process (schemathesis' ASGI transport, lifespan included: the run scheduler
launches real `nas resume` processes on a real SQLite file). Settings make a launch cheap: only
the synthetic evaluator, at most 5 architectures, one search at a time. Path ids are drawn
from what the fuzzer generates and from real ids (a finished search and its architectures, a
spare search that DELETE may remove), so the routes are exercised past their 404s. The SSE
stream is bounded: a 0.05 s poll, and a read deadline after which the events received so far
are checked.
"""

import os
import time

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
STREAM_SECONDS = 3.0  # an event stream is cut there (it only ends once its search has)
READ_SECONDS = 30.0  # the most one request may take on a busy machine
SLOW_SECONDS = 120.0  # an ONNX export traces the network; the zoo's first listing builds them all
SEED_CONFIG = {"name": "seed", "seed": 1, "strategy": {"name": "random"},
               "evaluator": {"name": "synthetic"}, "budget": {"architectures": 4},
               "samples_per_step": 2}


def _wait_finished(client, search_id, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/searches/{search_id}", headers=AUTH).json()["status"]
        if status == "finished":
            return
        time.sleep(0.2)
    raise AssertionError(f"seed search {search_id} is still {status}")


def _real_ids(app) -> dict:
    """Launch two small searches through the API and wait for them: their ids to fuzz with."""
    ids = {}
    with get_client(app) as client:
        for key in ("search_id", "spare_search_id"):
            response = client.post("/api/v1/searches", json=SEED_CONFIG, headers=AUTH)
            assert response.status_code == 201, response.text
            ids[key] = response.json()["id"]
            _wait_finished(client, ids[key])
        rows = client.get(f"/api/v1/searches/{ids['search_id']}/architectures",
                          headers=AUTH).json()["items"]
    ids["architecture_id"] = rows[0]["id"]
    return ids


def _stop_runs(app) -> None:
    """Stop the searches the fuzzer launched (their `nas resume` processes)."""
    from nas.store import SearchStatus

    store, launcher = app.state.store, app.state.runs.launcher
    for status in (SearchStatus.RUNNING, SearchStatus.QUEUED):
        for record in store.page_searches(status=status, limit=1000).items:
            launcher.stop(record.id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
            launcher.alive(record.id) for record in store.list_searches()):
        time.sleep(0.2)


def _spec() -> dict:
    """The app's OpenAPI document (it does not depend on the settings)."""
    from server.app import create_app
    from server.settings import ServerSettings

    app = create_app(ServerSettings(database_url="sqlite://", api_token=TOKEN))
    app.state.store.close()
    return app.openapi()


schema = schemathesis.openapi.from_dict(_spec())
REAL_IDS: dict[str, object] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, real ids in place of generated ones (DELETE gets the spare search)."""
    if not path_parameters:
        return st.just(path_parameters)
    real = dict(path_parameters)
    method = context.operation.method.upper() if context.operation else ""
    for name in real:
        if name == "search_id":
            real[name] = REAL_IDS["spare_search_id" if method == "DELETE" else "search_id"]
        elif name == "architecture_id":
            real[name] = REAL_IDS["architecture_id"]
    return st.sampled_from([path_parameters, real])


@schema.hook
def flatmap_case(context, case):
    """Half the valid launches made cheap enough to run here (the server refuses others): the
    synthetic evaluator, at most 5 architectures, no Ray workers, the default runner."""
    if (case.operation.label != "POST /api/v1/searches" or not isinstance(case.body, dict)
            or case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE):
        return st.just(case)
    return st.booleans().map(lambda cheap: _cheap_launch(case) if cheap else case)


def _cheap_launch(case):
    body = {key: value for key, value in case.body.items() if key not in ("workers", "runner")}
    body["evaluator"] = {"name": "synthetic"}
    budget = body.get("budget") if isinstance(body.get("budget"), dict) else {}
    body["budget"] = {"architectures": min(budget.get("architectures") or 5, 5)}
    if isinstance(body.get("dataset"), dict):
        body["dataset"] = {key: value for key, value in body["dataset"].items()
                           if key not in ("path", "id")}
    case.body = body
    return case


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    """A client of the app the fuzzer calls (in-process, lifespan running); real ids to use."""
    from server.app import create_app
    from server.settings import ServerSettings

    home = tmp_path_factory.mktemp("fuzz") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAS_HOME", str(home))
        patch.setenv("NAS_THREADS", "1")
        patch.setenv("OMP_NUM_THREADS", "1")
        settings = ServerSettings(api_token=TOKEN, home=home, runner="process",
                                  allowed_evaluators=["synthetic"], max_budget_architectures=5,
                                  max_running_searches=1, protect_reads=True)
        app = create_app(settings)
        app.state.sse_poll_seconds = 0.05
        REAL_IDS.update(_real_ids(app))
        with get_client(app) as client:
            yield client
        _stop_runs(app)
        shutdown_lifespans()


@schema.parametrize()
@hypothesis.settings(max_examples=int(os.environ.get("NAS_FUZZ_EXAMPLES", "15")),
                     derandomize=True, deadline=None, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_the_api_honours_its_spec_with_and_without_the_token(case, fuzzed_app):
    if case.path.endswith("/events"):
        timeout = STREAM_SECONDS
    elif case.path.endswith(("/export", "/zoo")):
        timeout = SLOW_SECONDS
    else:
        timeout = READ_SECONDS
    case.call_and_validate(session=fuzzed_app, checks=CHECKS, timeout=timeout)
    case.call_and_validate(session=fuzzed_app, headers=AUTH, checks=CHECKS, timeout=timeout)


def test_the_fuzzed_launches_really_ran(fuzzed_app):
    """Valid launches (with the token, within the server's caps) ran to the end: each search
    the fuzzer launched that has ended finished, and at least one did."""
    seeded = {REAL_IDS["search_id"], REAL_IDS["spare_search_id"]}
    deadline = time.monotonic() + 120
    while True:
        found = fuzzed_app.get("/api/v1/searches", params={"limit": 500},
                               headers=AUTH).json()["items"]
        launched = [item for item in found if item["id"] not in seeded]
        ended = [item for item in launched if item["finished_at"] is not None]
        if ended or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ended, f"none of the {len(launched)} fuzzed launches ended"
    assert [(item["status"], item["error"]) for item in ended] == [("finished", None)] * len(
        ended)


def test_every_operation_that_takes_a_body_declares_the_400_of_an_unparsable_one():
    """FastAPI answers 400 to a body that is not UTF-8 JSON before a route runs; the fuzzer
    finds that only when it happens to send one, so the spec is checked for it directly."""
    lacking = [f"{method.upper()} {path}" for path, operations in _spec()["paths"].items()
               for method, operation in operations.items()
               if "requestBody" in operation and "400" not in operation["responses"]]
    assert lacking == []
