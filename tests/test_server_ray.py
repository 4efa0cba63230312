"""Searches launched through the API run as Ray actors on a real local Ray: the runner asks
for the config's resources, a request Ray can never grant is refused, and cancelling frees
what the run held."""

import time

import pytest
from servers import wait_for

ray = pytest.importorskip("ray")
TOKEN = "ray-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    home = tmp_path_factory.mktemp("home")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    settings = ServerSettings(api_token=TOKEN, home=home, database_url=None, runner="ray",
                              max_running_searches=2)
    try:
        with TestClient(create_app(settings)) as test_client:
            yield test_client
    finally:
        ray.shutdown()


def slow_search(**runner):
    return {"name": "on-ray", "seed": 4, "strategy": {"name": "random"},
            "evaluator": {"name": "synthetic", "synthetic_seconds": 0.1},
            "budget": {"architectures": 2000}, "samples_per_step": 2, "runner": runner}


def test_a_search_runs_as_an_actor_with_its_resources_and_cancel_frees_them(client):
    full = ray.available_resources().get("CPU")
    launched = client.post("/api/v1/searches", json=slow_search(cpus=1.5), headers=AUTH)
    assert launched.status_code == 201, launched.text
    search_id = launched.json()["id"]
    running = wait_for(client, search_id, ("running",))
    assert running["owner"] is not None
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0.0) > full - 1.5:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    assert client.post(f"/api/v1/searches/{search_id}/cancel", headers=AUTH).status_code == 200
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0.0) < full:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    stopped = client.get(f"/api/v1/searches/{search_id}").json()
    assert stopped["status"] == "cancelled" and stopped["architectures"] < 2000


def test_a_runner_asking_for_a_gpu_the_cluster_lacks_is_refused(client):
    response = client.post("/api/v1/searches", json=slow_search(gpus=1), headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("runner.gpus: the search asks for 1")
    assert all(row["name"] != "on-ray" or row["status"] != "queued"
               for row in client.get("/api/v1/searches").json()["items"])
