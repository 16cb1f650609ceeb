"""The supported server: gunicorn with gunicorn.conf.py serves the app.

See docs/security/deployment.md.

Each test starts a real gunicorn on a free loopback port with a production configuration and
waits, with a bound, for it to answer or to exit.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOT_LIMIT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PDM_", "AWS_"))}
    env.update({
        "PDM_ENV": "production",
        "PDM_INSTANCE_PATH": str(tmp_path / "instance"),
        "PDM_DATABASE_URL": f"sqlite:///{tmp_path / 'pdm.sqlite3'}",
        "PDM_STORAGE_BACKEND": "local",
        "PDM_SECRET_KEY": secrets.token_urlsafe(48),
        "PDM_PROXY_COUNT": "1",
    })
    env.update(settings)
    return env


def _start(tmp_path: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    with (tmp_path / "gunicorn.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
            cwd=ROOT, env=_environment(tmp_path, **settings), stdout=log,
            stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback http
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = _start(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + BOOT_LIMIT_S
    try:
        while True:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                _get(f"{base}/api/v1/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "gunicorn did not answer in time"
                time.sleep(0.2)
        yield base
    finally:
        _stop(proc)


def test_gunicorn_serves_health_with_the_shipped_config(served: str) -> None:
    status, headers, body = _get(f"{served}/api/v1/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "problems": []}
    assert headers["Server"] == "gunicorn"
    # Plain HTTP from the proxy without X-Forwarded-Proto: no HSTS.
    assert "Strict-Transport-Security" not in headers


def test_gunicorn_trusts_the_proxys_scheme(served: str) -> None:
    # The TLS proxy says the client used https: HSTS and secure URLs follow.
    status, headers, _ = _get(f"{served}/api/v1/health", {"X-Forwarded-Proto": "https"})
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_gunicorn_refuses_a_broken_production_configuration(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, port, PDM_SECRET_KEY="change-me")
    try:
        code = proc.wait(timeout=BOOT_LIMIT_S)
    finally:
        _stop(proc)
    assert code != 0
    log = (tmp_path / "gunicorn.log").read_text()
    assert "secret key" in log
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _get(f"http://127.0.0.1:{port}/api/v1/health")
