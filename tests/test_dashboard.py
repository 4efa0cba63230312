"""The dashboard without a browser: the cell drawing (two op edges per block, names escaped),
`nas show --svg`, pages rendered by the real app over a real SQLite store (user-given text
escaped, tables readable without JavaScript), and the YAML launch going through the API's
checks (token + CSRF, dataset confinement, aliases refused)."""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager

import pytest
from servers import stop_runs_of, wait_for

from searchspace.drawing import cell_svg, genotype_svg
from searchspace.genotype import Genotype

TOKEN = "dash-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml"}  # what the dashboard's script sends
SVG = "{http://www.w3.org/2000/svg}"
GENOTYPE = Genotype(
    normal=((0, "sep_conv_3x3", 1, "identity"), (1, "avg_pool_3x3", 1, "sep_conv_5x5"),
            (2, "dil_conv_3x3", 0, "max_pool_3x3")),
    reduction=((0, "max_pool_3x3", 1, "conv_1x7_7x1"), (2, "inception", 0, "identity")),
)
HOSTILE = '<script>alert("x")</script>&"""'


def op_edges(svg_text):
    root = ElementTree.fromstring(svg_text)
    return [group for group in root.iter(f"{SVG}g") if group.get("class") == "op-edge"]


def test_a_cell_is_drawn_with_two_labelled_op_edges_per_block():
    for cell in ("normal", "reduction"):
        blocks = GENOTYPE.cell(cell)
        edges = op_edges(cell_svg(blocks, f"{cell} cell"))
        assert len(edges) == 2 * len(blocks)
        labels = [edge.find(f"{SVG}text").text for edge in edges]
        assert labels == [op for block in blocks for op in block[1::2]]
    normal = ElementTree.fromstring(cell_svg(GENOTYPE.normal))
    nodes = [group.find(f"{SVG}text").text for group in normal.iter(f"{SVG}g")
             if (group.get("class") or "").startswith("node")]
    assert nodes == ["c{k-2}", "c{k-1}", "b0", "b1", "b2", "concat"]
    concat = [group for group in normal.iter(f"{SVG}g") if group.get("class") == "concat-edge"]
    assert len(concat) == 2  # b1 and b2 are loose ends; b0 feeds b2


def test_op_names_and_titles_are_escaped_in_the_drawing():
    hostile = Genotype(normal=((0, HOSTILE, 1, "identity"),), reduction=((0, "x", 1, "y"),))
    text = cell_svg(hostile.normal, HOSTILE)
    assert "<script>" not in text
    edges = op_edges(text)  # still well-formed XML
    assert edges[0].find(f"{SVG}text").text == HOSTILE
    both = ElementTree.fromstring(genotype_svg(hostile, HOSTILE))
    assert len([g for g in both.iter(f"{SVG}g") if g.get("class") == "op-edge"]) == 4


@contextmanager
def served(tmp_path, monkeypatch, token):
    """A TestClient over the real app on a SQLite file; `token` None: an open server."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NAS_THREADS", "1")
    settings = ServerSettings(api_token=token, runner="process", home=tmp_path / "home",
                              database_url=f"sqlite:///{tmp_path / 'nas.db'}")
    try:
        with TestClient(create_app(settings)) as test_client:
            yield test_client
    finally:  # after the server: it launches no more
        stop_runs_of(tmp_path / "home")


@pytest.fixture
def client(tmp_path, monkeypatch):
    with served(tmp_path, monkeypatch, TOKEN) as test_client:
        yield test_client


def synthetic_yaml(name="dash", architectures=6):
    return (f"name: {name!r}\nseed: 1\nstrategy: {{name: random}}\n"
            f"evaluator: {{name: synthetic}}\nbudget: {{architectures: {architectures}}}\n"
            f"samples_per_step: 2\n").encode()


def test_the_yaml_launch_needs_the_session_and_its_csrf_token(client):
    assert client.post("/dashboard/searches", content=synthetic_yaml(),
                       headers=YAML).status_code == 401
    csrf = client.post("/session", json={"token": TOKEN}).json()["csrf_token"]
    assert client.post("/dashboard/searches", content=synthetic_yaml(),
                       headers=YAML).status_code == 403
    launched = client.post("/dashboard/searches", content=synthetic_yaml(),
                           headers={"X-CSRF-Token": csrf} | YAML)
    assert launched.status_code == 201, launched.text
    assert client.get(f"/api/v1/searches/{launched.json()['id']}").json()["name"] == "dash"


def test_an_open_servers_yaml_launch_refuses_what_another_sites_form_can_send(tmp_path,
                                                                             monkeypatch):
    """Without a token there is no session to forge, but a page of another site can still
    POST a form (text/plain, urlencoded, multipart: no CORS preflight) to a server on
    localhost; only the YAML media type the dashboard sends is accepted."""
    with served(tmp_path, monkeypatch, token=None) as client:
        for kind in ("text/plain", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", None):
            response = client.post("/dashboard/searches", content=synthetic_yaml(),
                                   headers={"Content-Type": kind} if kind else {})
            assert response.status_code == 415, (kind, response.text)
            assert "application/yaml" in response.json()["detail"]
        assert client.get("/api/v1/searches").json()["items"] == []
        assert client.post("/dashboard/searches", content=synthetic_yaml(),
                           headers=YAML).status_code == 201


@pytest.mark.parametrize(("body", "detail"), [
    (b"name: x\ndataset: {name: imagefolder, path: /etc}\n", "outside the folders"),
    (b"a: &x [1, 2]\nb: *x\n", "aliases"),
    (b"name: [unclosed\n", "invalid YAML"),
    (b"name: x\nbudget: {architectures: 4, architectures: 9}\n", "found key 'architectures' again"),
    (b"- a list\n", "expected a mapping"),
    (b"\xff\xfe", "not UTF-8"),
    (b"name: x\nbudget: {architectures: -1}\n", "budget.architectures"),
])
def test_a_bad_yaml_launch_is_a_422_and_stores_nothing(client, body, detail):
    response = client.post("/dashboard/searches", content=body, headers=AUTH | YAML)
    assert response.status_code == 422 and detail in response.json()["detail"]
    assert client.get("/api/v1/searches").json()["items"] == []


def test_pages_escape_user_text_and_show_tables_without_javascript(client):
    response = client.post("/dashboard/searches", content=synthetic_yaml(HOSTILE),
                           headers=AUTH | YAML)
    search_id = response.json()["id"]
    wait_for(client, search_id)
    index = client.get("/")
    assert index.status_code == 200 and "<script>alert" not in index.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in index.text
    page = client.get(f"/searches/{search_id}")
    assert page.status_code == 200 and "<script>alert" not in page.text
    assert page.text.count('<tr class="role-candidate') == 6  # rendered by the server
    by_reward = client.get(f"/searches/{search_id}", params={"sort": "reward", "order": "desc"})
    assert 'aria-sort="descending"' in by_reward.text
    best = client.get(f"/api/v1/searches/{search_id}/best").json()
    architecture = client.get(f"/architectures/{best['id']}")
    assert architecture.status_code == 200 and "<script>alert" not in architecture.text
    assert architecture.text.count('class="op-edge"') == 2 * sum(
        len(best["genotype"][cell]) for cell in ("normal", "reduction"))
    assert f'/api/v1/architectures/{best["id"]}/export?format=py' in architecture.text
    assert client.get("/searches/nope").status_code == 404
    assert client.get("/architectures/123456").status_code == 404


def test_a_pages_bad_request_is_a_page_with_its_status_and_the_api_keeps_json(client):
    search_id = client.post("/dashboard/searches", content=synthetic_yaml(),
                            headers=AUTH | YAML).json()["id"]
    wait_for(client, search_id)
    for path, params, status, says in [
        (f"/searches/{search_id}", {"sort": "bogus"}, 422, "query parameter sort: Input should"),
        (f"/searches/{search_id}", {"cursor": "x" * 600}, 422, "query parameter cursor"),
        (f"/searches/{search_id}", {"cursor": "not-a-cursor"}, 422, "cursor"),
        ("/architectures/abc", {}, 422, "path parameter architecture_id"),
        ("/architectures/9223372036854775808", {}, 404, "9223372036854775808"),
        ("/", {"cursor": "<b>not-a-cursor</b>"}, 422, "cursor"),
    ]:
        response = client.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"].startswith("text/html"), (path, params)
        assert says in response.text and "<b>not" not in response.text, response.text
        assert 'href="/"' in response.text  # the way back to the searches
    api = client.get(f"/api/v1/searches/{search_id}/architectures", params={"sort": "bogus"})
    assert api.status_code == 422 and api.json()["detail"][0]["loc"] == ["query", "sort"]


def test_pages_ask_to_sign_in_when_reads_are_protected(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    settings = ServerSettings(api_token=TOKEN, protect_reads=True, runner="process",
                              home=tmp_path / "home",
                              database_url=f"sqlite:///{tmp_path / 'nas.db'}")
    with TestClient(create_app(settings)) as client:
        refused = client.get("/")
        assert refused.status_code == 401 and 'id="signin"' in refused.text
        assert client.get("/static/dashboard.js").status_code == 200
        client.post("/session", json={"token": TOKEN})
        assert client.get("/").status_code == 200


def test_nas_show_writes_the_best_architectures_cells_as_svg(tmp_path):
    env = {"NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1", "PATH": "/usr/bin:/bin"}
    nas = [sys.executable, "-c", "from nas.cli import main; main()"]
    ran = subprocess.run([*nas, "search", "--evaluator", "synthetic", "--strategy", "random",
                          "--budget-architectures", "4", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    search_id = __import__("json").loads(ran.stdout.strip().splitlines()[-1])["search_id"]
    out = tmp_path / "best.svg"
    shown = subprocess.run([*nas, "show", search_id, "--svg", str(out), "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    best = __import__("json").loads(shown.stdout)["top"][0]["genotype"]
    root = ElementTree.fromstring(out.read_text())
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "op-edge"]
    assert len(edges) == 2 * (len(best["normal"]) + len(best["reduction"]))
    missing = subprocess.run([*nas, "show", "nope", "--svg", str(tmp_path / "x.svg")], env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.svg").exists()


def test_a_failed_candidate_shows_its_reason_and_log_and_zoo_runs_show_beside_the_best(
        client):
    store = client.app.state.store
    search = store.create_search("runs", {"dataset": {"name": "digits"},
                                          "evaluator": {"name": "standalone"}}, seed=0)
    failed, scored = store.add_architectures(search.id, 0, [GENOTYPE, GENOTYPE], "standalone")
    store.finish_architecture(failed, state="FAIL", error=f"out of memory {HOSTILE}", metrics={
        "traceback": "Traceback (most recent call last):\nMemoryError", "history": [
            {"epoch": 1, "train_loss": 2.1, "val_accuracy": 0.3, "seconds": 1.0}]})
    store.finish_architecture(scored, state="COMPLETE", reward=0.8, accuracy=0.8, params=1000)
    page = client.get(f"/architectures/{failed}")
    assert page.status_code == 200 and "Why it failed" in page.text
    assert "out of memory &lt;script&gt;" in page.text and "MemoryError" in page.text
    assert "epoch 1: train loss 2.1000" in page.text
    assert "Classic networks" not in client.get(f"/searches/{search.id}").text
    (zoo,) = store.add_architectures(search.id, 0, [GENOTYPE], "zoo", role="zoo")
    store.finish_architecture(zoo, state="COMPLETE", reward=0.9, accuracy=0.9, params=5000,
                              metrics={"zoo": "resnet20"})
    beside = client.get(f"/searches/{search.id}").text
    assert "Classic networks trained on the same dataset" in beside and "resnet20" in beside


def test_an_enas_search_page_tells_how_far_its_ranking_can_be_trusted(client):
    store = client.app.state.store
    search = store.create_search("ranked", {"dataset": {"name": "digits"},
                                            "evaluator": {"name": "enas"}}, seed=0)
    (derived,) = store.add_architectures(search.id, 1, [GENOTYPE], "enas", role="derived")
    ranking = {"kendall_tau": 0.6123, "low": 0.41, "high": 0.78, "candidates": 32,
               "confidence": 0.95}
    store.finish_architecture(derived, state="COMPLETE", reward=0.7, accuracy=0.7, params=900,
                              metrics={"derived_from": 32, "ranking": ranking})
    page = " ".join(client.get(f"/searches/{search.id}").text.split())
    assert ("the search's scores rank derivation's 32 candidates as the full validation split "
            'does with Kendall\'s tau <span class="num">0.61</span> (95% bootstrap interval '
            "0.41 to 0.78)") in page
    (other,) = store.add_architectures(search.id, 2, [GENOTYPE], "enas", role="derived")
    store.finish_architecture(other, state="COMPLETE", reward=0.9, accuracy=0.9, params=900,
                              metrics={"ranking": ranking | {"kendall_tau": None, "low": None,
                                                             "high": None, "candidates": 1}})
    page = " ".join(client.get(f"/searches/{search.id}").text.split())
    assert "undefined (1 candidate(s) in derivation)" in page
