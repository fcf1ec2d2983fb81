"""`kill -9` of the whole `tickwise run`, then a restart: the second run settles what the first
left unanswered, rebuilds the ledger from the journal, and converges to the venues' positions.

The three venues are simulator servers in processes of their own (`tickwise venue-sim`), the
way a real venue outlives the trading process: their books survive the kill, so the restart has
something real to reconcile with.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invariants import UNANSWERED, assert_invariants

from tickwise.config import load
from tickwise.store import open_store
from tickwise.venues.credentials import MASTER_KEY_ENV, MasterKey

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

TICKWISE = [str(Path(sys.executable).with_name("tickwise"))]  # the installed command
VENUES = ("alpaca", "binance", "etrade")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault(MASTER_KEY_ENV, MasterKey.generate().to_base64())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A seeded store and one simulator server per venue, serving the store's accounts."""
    env = _env()
    url = f"sqlite:///{tmp_path / 'tw.sqlite'}"
    tiny = load(tier="tiny")
    subprocess.run(
        [*TICKWISE, "clients", "seed", "--tier", "tiny", "--store", url],
        check=True,
        env=env,
        capture_output=True,
    )
    servers: dict[str, subprocess.Popen[str]] = {}
    urls: dict[str, str] = {}
    try:
        for venue in VENUES:
            proc = subprocess.Popen(
                [
                    *TICKWISE,
                    "venue-sim",
                    "--venue",
                    venue,
                    "--store",
                    url,
                    "--no-rate-limits",
                    "--stocks",
                    str(tiny.market.stocks),
                    "--crypto",
                    str(tiny.market.crypto),
                    "--seed",
                    str(tiny.run.seed),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            servers[venue] = proc
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"on (http://\S+)", line)
            assert found, f"{venue} simulator did not start: {line!r}"
            urls[venue] = found.group(1)
        yield {"url": url, "urls": urls, "env": env, "dir": tmp_path}
    finally:
        for proc in servers.values():
            proc.send_signal(signal.SIGINT)
        for proc in servers.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _config_file(world: dict[str, Any], duration_s: float, name: str) -> Path:
    urls = "\n".join(f'{v}_url = "{u}"' for v, u in world["urls"].items())
    path: Path = world["dir"] / f"{name}.toml"
    path.write_text(
        f'[run]\ntier = "tiny"\nduration_s = {duration_s}\nlive_panel = false\n'
        f'[store]\nurl = "{world["url"]}"\n'
        f'[venues]\nmode = "http"\nrate_limits = false\n{urls}\n'
        "[tuning]\nenabled = false\n[dashboard]\nport = 0\n",
        encoding="utf-8",
    )
    return path


def _run_ids(url: str) -> list[str]:
    import sqlite3

    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_ns")]


def test_kill_dash_9_then_restart_converges_to_the_venues_positions(
    local_ray: None, world: dict[str, Any]
) -> None:
    first = subprocess.Popen(
        [*TICKWISE, "run", "--config", str(_config_file(world, 600.0, "first"))],
        env=world["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the driver and the Ray it started
    )
    try:
        deadline = time.monotonic() + 300  # a loaded machine starts Ray slowly
        while time.monotonic() < deadline and first.poll() is None:
            if Path(world["url"].removeprefix("sqlite:///")).exists() and _orders(world) > 200:
                break
            time.sleep(0.5)
        assert first.poll() is None, "the first run ended before it could be killed"
        assert _orders(world) > 200, "the first run placed no orders in time"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # kill -9 of the whole run, Ray included
        first.wait(timeout=30)
    summary_path = world["dir"] / "second.json"
    second = subprocess.run(
        [
            *TICKWISE,
            "run",
            "--config",
            str(_config_file(world, 10.0, "second")),
            "--summary-json",
            str(summary_path),
        ],
        env=world["env"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert second.returncode == 0, (summary.get("recovery"), second.stderr[-4000:])
    recovery = summary["recovery"]
    # Killed mid-flow, the first run left orders without a recorded answer (at least those
    # whose answers the ledger had not yet written): the restart settled every one of them.
    assert recovery["adopted"] + recovery["expired"] + recovery["resent"] > 0, recovery
    assert recovery["unresolved"] == 0, recovery
    assert recovery["accounts_blocked"] == 0, recovery
    assert_invariants(summary, world["url"])
    print("recovery after kill -9:", recovery)
    ids = _run_ids(world["url"])
    assert len(ids) == 2
    store = open_store(world["url"])
    try:
        first_stats = store.order_stats(ids[0])
        assert first_stats["journaled"] > 0
        left = {s: first_stats["by_state"].get(s, 0) for s in UNANSWERED}
        assert sum(left.values()) == 0, first_stats
        assert first_stats["duplicate_client_order_ids"] == 0
    finally:
        store.close()


def _orders(world: dict[str, Any]) -> int:
    ids = _run_ids(world["url"]) if Path(world["url"].removeprefix("sqlite:///")).exists() else []
    if not ids:
        return 0
    store = open_store(world["url"])
    try:
        return int(store.order_stats(ids[-1])["journaled"])
    finally:
        store.close()
