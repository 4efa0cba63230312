"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)
against a real `nas serve` on 127.0.0.1: sign in, launch an ENAS search on digits through the
form, watch its table and chart grow without a reload, open an architecture and count both
cells' op edges, download the `.py` export, cancel a second running search from its button.
Every page: no request leaves 127.0.0.1, no console error; screenshots in test-artifacts/."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from servers import TOKEN, Server, wait_for

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="no /usr/bin/chromium (apt-get install chromium)"),
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENAS_YAML = """\
name: digits-enas <b>form</b>
seed: 0
strategy: {name: reinforce}
evaluator: {name: enas, warmup_epochs: 1, steps_per_epoch: 2, derive_samples: 4, derive_top: 2}
dataset: {name: digits}
network: {cells: 1, channels: 8}
budget: {architectures: 40}
samples_per_step: 2
"""
SLOW_SYNTHETIC = {"name": "slow synthetic", "seed": 1, "strategy": {"name": "random"},
                  "evaluator": {"name": "synthetic", "synthetic_seconds": 0.5},
                  "budget": {"architectures": 400}, "samples_per_step": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("dashboard")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A browser page whose requests and console errors are recorded."""

    def __init__(self, context):
        self.page = context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: message.type == "error"
                     and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def check(self):
        """Nothing left 127.0.0.1 and nothing went wrong in the console."""
        outside = [url for url in self.requests if urlparse(url).hostname != "127.0.0.1"]
        assert outside == [], outside
        assert self.errors == [], self.errors

    def shot(self, name):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800},
                                  accept_downloads=True)
    page = Watched(context)
    yield page
    context.close()


def sign_in(page):
    page.goto("/")
    page.fill("#token", TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#signed-in", state="visible")


def points(page):
    return page.locator("#chart-reward .pt").count()


def test_launch_from_the_form_watch_it_grow_open_an_architecture_and_download(
        watched, server, tmp_path):
    page = watched.page
    sign_in(page)
    page.fill("#config", ENAS_YAML)
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url("**/searches/*")
    search_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.notReloaded = true")
    # the chart and the table grow while it runs, from the SSE stream, without a reload
    page.wait_for_function("document.querySelectorAll('#chart-reward .pt').length >= 2",
                           timeout=120_000)
    page.wait_for_function("document.querySelectorAll('#architectures tr.role-candidate')"
                           ".length >= 2", timeout=30_000)
    seen = points(page)
    rows = page.locator("#architectures tr.role-candidate").count()
    status = httpx.get(f"{server.url}/api/v1/searches/{search_id}").json()["status"]
    assert status == "running", "the search ended before the page could watch it grow"
    watched.shot("search-running")
    page.wait_for_function(f"document.querySelectorAll('#chart-reward .pt').length > {seen}",
                           timeout=120_000)
    page.wait_for_function("document.querySelector('#search-status').textContent"
                           ".includes('finished')", timeout=180_000)
    page.wait_for_function("document.querySelectorAll('#architectures tbody tr').length"
                           " === 25", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    assert points(page) > seen and page.locator("#architectures tbody tr").count() > rows
    page.wait_for_function("document.querySelector('#architecture-count').textContent"
                           " === '(42)'", timeout=10_000)  # 40 + 2 derived, drawn throttled
    assert page.locator("#chart-reward .series.derived .pt").count() == 2
    assert page.locator("#chart-params .series.pareto .pt").count() >= 1
    assert "<b>form</b>" in page.locator("h1").text_content()  # shown as text, not markup
    page.wait_for_timeout(1200)  # the table's last live refresh
    watched.shot("search-finished")
    # the best architecture: both cells drawn, two op edges per block
    page.reload()  # the best-so-far box is rendered by the server
    page.locator("section.best a").first.click()
    page.wait_for_url("**/architectures/*")
    best = httpx.get(f"{server.url}/api/v1/architectures/{page.url.rsplit('/', 1)[1]}").json()
    assert best["role"] == "derived"
    for cell in ("normal", "reduction"):
        edges = page.locator(f"svg#{cell}-cell g.op-edge").count()
        assert edges == 2 * len(best["genotype"][cell]) > 0
    watched.shot("architecture")
    with page.expect_download() as download_info:
        page.locator('a[data-format="py"]').click()
    module = tmp_path / "model.py"
    download_info.value.save_as(module)
    ran = subprocess.run([sys.executable, "-I", "-c", "import sys, torch; sys.path.insert(0, "
                          "'.'); import model; net = model.build_model().eval(); "
                          "print(tuple(net(torch.zeros(2, 1, 8, 8)).shape))"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.strip() == "(2, 10)", ran.stderr
    # the index lists it; on a phone too
    page.goto("/")
    assert page.locator(f'tr[data-search="{search_id}"] .status').text_content() == "finished"
    watched.shot("searches")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/searches/{search_id}")
    page.wait_for_selector("#chart-reward svg")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width} px wide on a 390 px phone"
    watched.shot("search-phone")
    watched.check()


def test_cancel_a_running_search_from_its_button_with_the_keyboard(watched, server):
    launched = httpx.post(f"{server.url}/api/v1/searches", json=SLOW_SYNTHETIC, headers=AUTH,
                          timeout=30)
    search_id = launched.json()["id"]
    with httpx.Client(base_url=server.url) as client:
        wait_for(client, search_id, ("running",), timeout=60)
    page = watched.page
    sign_in(page)
    row = page.locator(f'tr[data-search="{search_id}"]')
    row.locator(".status").get_by_text("running").wait_for()
    button = row.get_by_role("button", name="Cancel")
    button.focus()
    page.keyboard.press("Enter")
    row.locator(".status").get_by_text("cancelled").wait_for()
    with httpx.Client(base_url=server.url) as client:
        body = wait_for(client, search_id, ("cancelled",), timeout=30)
    assert body["architectures"] < 400
    assert row.get_by_role("button", name="Resume").count() == 1
    watched.shot("searches-cancelled")
    watched.check()


def test_pages_without_javascript_still_show_the_tables(browser, server):
    quick = SLOW_SYNTHETIC | {"name": "quick", "budget": {"architectures": 6},
                              "evaluator": {"name": "synthetic"}}
    search_id = httpx.post(f"{server.url}/api/v1/searches", json=quick, headers=AUTH,
                           timeout=30).json()["id"]
    with httpx.Client(base_url=server.url) as client:
        wait_for(client, search_id, timeout=60)
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/")
    assert page.locator("#searches tbody tr[data-search]").count() >= 1
    page.locator(f'tr[data-search="{search_id}"] a').click()
    page.wait_for_url("**/searches/*")
    assert page.locator("#architectures tbody tr").count() == 6
    page.get_by_role("link", name="Reward").click()  # server-side sort
    assert "sort=reward" in page.url
    context.close()
