"""The dashboard in a real browser (headless Chromium) while a `tiny` run goes on: the overview
loads and its numbers move, the client search finds a client, the kill switch halts the order
flow (checked through the API and the journal), and nothing is served without the token.
Screenshots of every page go to `$TICKWISE_ARTIFACTS/dashboard` (default
`test-artifacts/dashboard`)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tickwise.config import load
from tickwise.engine.controller import Engine
from tickwise.store.sqlite import SQLiteStore, executions_path
from tickwise.web.dashboard import serve

pytestmark = pytest.mark.integration

TOKEN = "browser-test-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("TICKWISE_ARTIFACTS", "test-artifacts")) / "dashboard"


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromedriver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def api(base: str, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(base + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


def until(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(driver: Any, css: str) -> str:
    """The text of the first element matching `css` ("" while there is none; the pages
    redraw as they poll, so an element may be replaced while it is read)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return str(found[0].text).strip() if found else ""
    except StaleElementReferenceException:
        return ""


def click(driver: Any, css: str) -> None:
    """Click the element matching `css`, finding it again if a redraw replaced it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            if found:
                found[0].click()
            return bool(found)
        except StaleElementReferenceException:
            return False

    until(f"a click on {css}", attempt)


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    time.sleep(1.5)  # a poll or two: the charts have drawn
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _orders_signalled_after(path: Path, run_id: str, after_ns: int) -> int:
    with SQLiteStore(path) as store:
        store.expand_journal()  # the orders the ledger has not yet written out
    with sqlite3.connect(executions_path(str(path))) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE run_id = ? AND ts_signal > ?", (run_id, after_ns)
        ).fetchone()
    return int(row[0])


def test_the_dashboard_watches_a_run_and_its_kill_switch_stops_the_orders(
    local_ray: None, tmp_path: Path, browser: Any
) -> None:
    path = tmp_path / "tw.sqlite"
    config = load(tier="tiny")
    config = replace(
        config,
        run=replace(config.run, duration_s=45.0, live_panel=False),
        tuning=replace(config.tuning, every_s=3.0),
        store=replace(config.store, url=f"sqlite:///{path}"),
        dashboard=replace(config.dashboard, port=0, token=TOKEN),
    )
    engine = Engine(config)
    marks: dict[str, Any] = {}
    failures: list[BaseException] = []

    def operate(base: str) -> None:
        try:
            _operate(base, browser, marks)
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)
            engine.request_stop()

    try:
        engine.start()
        server, _, generated = serve(config, engine.live)
        assert not generated
        operator = threading.Thread(target=operate, args=(server.url,))
        operator.start()
        summary = engine.run()
        operator.join()
        # After the run the API still answers from the store: the halt is there.
        status, halts = api(server.url, "/api/v1/halts")
        server.stop()
    finally:
        engine.shutdown()
    if failures:
        raise failures[0]
    assert status == 200 and [h["scope"] for h in halts["active"]] == ["global"]
    assert marks["orders_before_halt"] > 0
    # Every signal sized after the halt was committed was refused: no order came of it.
    assert _orders_signalled_after(path, summary["run_id"], marks["halted_ns"]) == 0
    assert summary["orders"]["not_sent_by_allocator"]["halted"] > 0
    assert summary["invariants"]["ok"], summary["invariants"]
    assert {p.name for p in ARTIFACTS.glob("*.png")} >= {
        "overview.png",
        "clients.png",
        "client.png",
        "instrument.png",
        "venues.png",
        "cluster.png",
        "halted.png",
    }


def _operate(base: str, driver: Any, marks: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # Nothing without the token.
    assert api(base, "/api/v1/status", token=None)[0] == 401
    assert api(base, "/api/v1/status", token="wrong")[0] == 401
    driver.get(base + "/")
    assert "token is needed" in driver.page_source

    # The overview loads and its numbers change while the run goes on.
    driver.get(f"{base}/?token={TOKEN}")
    assert "token=" not in driver.current_url
    first = until("ticks on the overview", lambda: text_of(driver, "#tile-ticks .total"))
    until(
        "the overview's ticks to change",
        lambda: text_of(driver, "#tile-ticks .total") not in ("", first),
    )
    until("a run state", lambda: text_of(driver, "#run-state").lower() == "running")
    shot(driver, "overview")

    # The client search finds a client, and its page opens.
    driver.get(f"{base}/#/clients")
    box = until("the search box", lambda: driver.find_elements(By.ID, "client-search"))[0]
    box.send_keys("12")
    result = "#client-results a[href='#/client/12']"
    until("client 12 among the results", lambda: driver.find_elements(By.CSS_SELECTOR, result))
    shot(driver, "clients")
    click(driver, result)
    until("client 12's page", lambda: text_of(driver, "#client-id") == "12")
    shot(driver, "client")

    symbol = api(base, "/api/v1/instruments?limit=1")[1]["instruments"][0]["symbol"]
    for page, element in (
        (f"instrument/{symbol}", "chart-price"),
        ("venues", "venues"),
        ("cluster", "cluster-nodes"),
    ):
        driver.get(f"{base}/#/{page}")
        if page != "venues":
            until(f"the {page} page", lambda e=element: driver.find_elements(By.ID, e))
        shot(driver, page.split("/")[0])

    # Orders are created, then the kill switch (with its confirmation) stops them: the
    # allocators journal none after it (those journaled before may still be on their way).
    totals = lambda: api(base, "/api/v1/throughput?since=0")[1]["totals"]["journaled"]  # noqa: E731
    start = totals()
    marks["orders_before_halt"] = until("orders to flow", lambda: totals() - start, 25.0)
    driver.get(f"{base}/#/overview")
    click(driver, "#halt-button")
    until("the confirmation", lambda: driver.find_element(By.ID, "halt-dialog").is_displayed())
    driver.find_element(By.ID, "halt-reason").send_keys("browser drill", Keys.TAB)
    driver.find_element(By.ID, "halt-confirm").click()
    until("the halt in the API", lambda: api(base, "/api/v1/status")[1]["halted"])
    marks["halted_ns"] = time.time_ns()
    until("the halt banner", lambda: "browser drill" in text_of(driver, "#halt-banner"))
    shot(driver, "halted")
    time.sleep(2.0)  # signal batches sized before the halt was committed
    settled = totals()
    time.sleep(3.0)
    assert totals() == settled, "orders are still created after the halt"
