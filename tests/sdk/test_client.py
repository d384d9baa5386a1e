# ruff: noqa: F811 - pytest fixtures imported from _grpc_fixtures
"""The Python clients' own behaviour: retries with backoff for UNAVAILABLE, typed errors,
argument checks; and ``facecraft serve`` as a process (SIGTERM stops it gracefully)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import facecraft.sdk.client as client_mod
import facecraft.sdk.client_async as client_async
from facecraft.sdk.client import (
    AsyncFaceCraftClient,
    FaceCraftClient,
    FaceCraftRpcError,
    ReconstructOptions,
    RetryPolicy,
)
from facecraft.sdk.errors import FaceCraftError, InvalidInputError

from ._grpc_fixtures import (  # noqa: F401 - fixtures
    one_torch_thread,
    package_path,
    photos,
    pipelines,
    running_server,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_retry_policy_backoff_and_checks():
    pol = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=0.5, multiplier=2.0, jitter=0.0)
    assert [pol.backoff(k) for k in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    jittery = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=1.0, jitter=0.2)
    assert all(0.8 <= jittery.backoff(1) <= 1.2 for _ in range(50))
    for bad in ({"max_attempts": 0}, {"multiplier": 0.5}, {"jitter": 1.0},
                {"initial_backoff_s": 2.0, "max_backoff_s": 1.0}):
        with pytest.raises(InvalidInputError):
            RetryPolicy(**bad)
    with pytest.raises(InvalidInputError):
        FaceCraftClient("127.0.0.1:1", timeout_s=0)
    with pytest.raises(InvalidInputError):
        FaceCraftClient("127.0.0.1:1", client_cert=b"x")
    with FaceCraftClient("127.0.0.1:1") as c, pytest.raises(InvalidInputError):
        c.reconstruct(12345)


def test_unavailable_is_retried_with_exponential_backoff(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(client_mod.time, "sleep", waits.append)
    pol = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=1.0, jitter=0.0)
    with FaceCraftClient(f"127.0.0.1:{_free_port()}", retry=pol, timeout_s=20) as c:
        with pytest.raises(FaceCraftRpcError) as e:
            c.model_info()
    assert e.value.code == "UNAVAILABLE" and isinstance(e.value, FaceCraftError)
    assert waits == [0.01, 0.02, 0.04]  # three waits between four tries


def test_non_retryable_errors_are_not_retried(monkeypatch, pipelines, photos):
    waits: list[float] = []
    monkeypatch.setattr(client_mod.time, "sleep", waits.append)
    with running_server(pipelines) as (_, target), FaceCraftClient(target) as c:
        with pytest.raises(FaceCraftRpcError) as e:
            c.reconstruct(b"not a photo")
        assert e.value.code == "INVALID_ARGUMENT" and e.value.request_id
        assert "INVALID_ARGUMENT" in str(e.value)
    assert waits == []


def test_a_server_that_comes_up_late_is_reached(pipelines, photos):
    port = _free_port()
    started, done = threading.Event(), threading.Event()

    def late_server() -> None:
        time.sleep(0.3)
        with running_server(pipelines, port=port) as _:
            started.set()
            done.wait(30)

    t = threading.Thread(target=late_server)
    t.start()
    pol = RetryPolicy(max_attempts=30, initial_backoff_s=0.05, max_backoff_s=0.2)
    try:
        with FaceCraftClient(f"127.0.0.1:{port}", retry=pol, timeout_s=20) as c:
            assert c.reconstruct(photos["000002"]).faces
        assert started.is_set()
    finally:
        done.set()
        t.join(10)


def test_async_client_retries_and_raises_typed_errors(monkeypatch):
    waits: list[float] = []

    async def fake_sleep(s: float) -> None:
        waits.append(s)

    monkeypatch.setattr(client_async.asyncio, "sleep", fake_sleep)
    pol = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, jitter=0.0)

    async def main():
        async with AsyncFaceCraftClient(f"127.0.0.1:{_free_port()}", retry=pol) as c:
            with pytest.raises(FaceCraftRpcError) as e:
                await c.reconstruct(b"x", ReconstructOptions())
            return e.value

    err = asyncio.run(main())
    assert err.code == "UNAVAILABLE" and waits == [0.01, 0.02]


# --------------------------------------------------------------------------- facecraft serve
def test_serve_command_serves_and_stops_on_sigterm(package_path, photos, tmp_path):
    token = tmp_path / "token"
    token.write_text("cli-token\n")
    env = {**os.environ, "FACECRAFT_TOKEN": "ignored-when-a-file-is-given"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facecraft.sdk.cli", "serve", "--port", "0", "--package",
         str(package_path), "--metrics-port", "0", "--token-file", str(token),
         "--log-format", "json", "--grace", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), (line, proc.stderr.read()
                                                             if proc.poll() is not None else "")
        target = line.split()[2].rstrip(",")
        metrics_url = line.rsplit(" ", 1)[1].strip()
        with FaceCraftClient(target, token="cli-token", timeout_s=60) as c:
            assert c.health() == "SERVING"
            rec = c.reconstruct(photos["000002"], request_id="cli-call")
            assert rec.faces and rec.request_id == "cli-call"
        with FaceCraftClient(target, retry=RetryPolicy(max_attempts=1)) as anon:
            with pytest.raises(FaceCraftRpcError) as e:
                anon.model_info()
            assert e.value.code == "UNAUTHENTICATED"
        text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
        assert 'facecraft_rpc_requests_total{method="Reconstruct",code="OK"} 1' in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    records = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    calls = [r for r in records if r.get("request_id") == "cli-call"]
    assert calls and calls[0]["code"] == "OK" and calls[0]["method"] == "Reconstruct"
    assert calls[0]["latency_ms"] > 0
    assert any("shutting down" in r["message"] for r in records)


def test_serve_command_reports_a_bad_package(tmp_path):
    r = subprocess.run([sys.executable, "-m", "facecraft.sdk.cli", "serve", "--port", "0",
                        "--package", str(tmp_path / "missing.fcpkg")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "facecraft: error:" in r.stderr
    assert "Traceback" not in r.stderr
