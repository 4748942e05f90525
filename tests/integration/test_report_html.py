"""report.html in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

The page of a real (in-process) lab run must load without console errors or outside requests, hold
every experiment, sort on a header click, and show agent-written markup as text. A screenshot is kept
in ``test-artifacts/report.png``. The error detector itself is tested on pages with injected faults.
CI installs Chromium with ``scripts/ci_system_deps.sh``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from websockets.sync.client import ClientConnection, connect

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.reports.html import write_html
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.tools.inprocess import FunctionExecutor
from bench.synthetic import noisy_loss, synthetic_task
from tests.support.cli import stop

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<img src=x onerror="console.error(1)"><script>console.error("xss")</script>'


class Page:
    """One browser tab over CDP: send commands, keep every event, report what counts as an error."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 15.0, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic()))))

    def js(self, expression: str) -> Any:
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert, and browser log errors (CSP, failed loads)."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                found.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                found.append("log: " + p["entry"].get("text", ""))
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.js(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el.scrollIntoView({{block: 'center'}});"
                      " const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    """A headless Chromium; yields its DevTools HTTP address."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (bash scripts/ci_system_deps.sh)")
    profile = Path(tempfile.mkdtemp(prefix="autosci-chromium-"))
    log = (profile / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"],  # port 0: Chromium picks one and writes it down
        stdout=log, stderr=subprocess.STDOUT)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Chromium did not start: {(profile / 'chromium.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def open_page(browser: str, path: Path) -> Iterator[Page]:
    """A new tab that has loaded ``path``, with every console, log and network event recorded."""
    with urllib.request.urlopen(urllib.request.Request(f"{browser}/json/new?about:blank", method="PUT"), timeout=10) as r:
        target = json.load(r)
    try:
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            for domain in ("Runtime", "Log", "Network", "Page"):
                page.call(f"{domain}.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
            page.call("Page.navigate", url=path.resolve().as_uri())
            page.wait_for("Page.loadEventFired")
            page.js("1")  # a round trip: every event the load produced has arrived before its answer
            yield page
    finally:
        urllib.request.urlopen(f"{browser}/json/close/{target['id']}", timeout=10).close()


@pytest.fixture(scope="module")
def run_state() -> dict[str, Any]:
    """The final state of a real lab run on the synthetic task, with agent text that tries to be HTML."""
    task = synthetic_task()
    executor = FunctionExecutor(lambda change, seed: noisy_loss(change, seed), metric_name="loss", slots=2)
    ctx = LabContext(task=task, executor=executor, scientist=SearchScientist(), settings=LabSettings(max_experiments=16), poll_s=0.2)
    try:
        final = build_lab_graph().compile(checkpointer=InMemorySaver()).invoke(
            {"run_id": "html"}, context=ctx, config={"configurable": {"thread_id": "html"}, "recursion_limit": 10_000})
    finally:
        executor.close()
    state = copy.deepcopy(dict(final))
    state["log"][2]["proposal"]["change"]["description"] = HOSTILE
    state["teams"][0]["hypothesis"]["statement"] = HOSTILE
    return state


@pytest.fixture(scope="module")
def report(run_state: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html(run_state, synthetic_task(), tmp_path_factory.mktemp("run"))


def column(page: Page, index: int) -> list[str]:
    return page.js(f"Array.from(document.querySelectorAll('#experiments tbody tr')).map(r => r.cells[{index}].dataset.v)")


def test_report_loads_clean_holds_every_experiment_and_sorts(browser: str, report: Path, run_state: dict[str, Any]) -> None:
    with open_page(browser, report) as page:
        assert page.errors() == []
        assert [u for u in page.requests() if not u.startswith(("file:", "data:"))] == []

        ids = page.js("Array.from(document.querySelectorAll('#experiments tbody tr')).map(r => r.cells[1].textContent)")
        assert len(ids) == len(run_state["log"]) >= 12
        assert sorted(ids) == sorted(e["result"]["experiment_id"] for e in run_state["log"])
        assert page.js("document.querySelector('img.plot').naturalWidth") > 0
        assert page.js("document.querySelectorAll('pre.diff .add').length") > 0

        # Agent text is shown, never run: no injected element, the markup readable as text.
        assert page.js("document.querySelectorAll('main img').length") == 1
        assert HOSTILE in page.js("document.querySelector('#experiments').textContent")
        assert HOSTILE in page.js("document.querySelector('#teams').textContent")

        metric_col = 7
        before = column(page, metric_col)
        page.click("#experiments th:nth-child(8)")
        ascending = column(page, metric_col)
        numbers = [float(v) for v in ascending if v != ""]
        assert ascending != before
        assert numbers == sorted(numbers) and ascending[: len(numbers)] == [v for v in ascending if v != ""]
        page.click("#experiments th:nth-child(8)")
        descending = [float(v) for v in column(page, metric_col) if v != ""]
        assert descending == sorted(numbers, reverse=True)
        page.click("#experiments th:nth-child(1)")
        assert [int(float(v)) for v in column(page, 0)] == sorted(e["index"] for e in run_state["log"])
        assert page.errors() == []

        ARTIFACTS.mkdir(exist_ok=True)
        page.js("window.scrollTo(0, 0)")
        size = page.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        (ARTIFACTS / "report.png").write_bytes(base64.b64decode(shot["data"]))
        shutil.copyfile(report, ARTIFACTS / "report.html")
        assert (ARTIFACTS / "report.png").stat().st_size > 10_000


@pytest.mark.parametrize("fault, expected", [
    ("<script>window.notAFunction();</script>", "exception: TypeError"),
    ("<script>console.error('injected failure');</script>", "console: injected failure"),
    ('<img src="https://example.com/pixel.png">', "log: "),
])
def test_the_error_detector_catches_injected_faults(browser: str, report: Path, tmp_path: Path, fault: str, expected: str) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text(encoding="utf-8").replace("</main>", fault + "</main>"), encoding="utf-8")
    with open_page(browser, broken) as page:
        assert any(e.startswith(expected) for e in page.errors()), page.errors()
