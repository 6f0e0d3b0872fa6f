"""The requests-suite plugin: its network fence holds and it swaps in a Session class."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "tests" / "compat"

PROBE = textwrap.dedent(
    """
    import socket, time
    import requests_suite_plugin  # the fence goes up on import
    import requests

    def outcome(fn):
        try:
            fn()
        except socket.gaierror:
            return "gaierror"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return f"oserror:{exc.errno}"
        return "ok"

    def connect(host, port=80, timeout=0.5):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        finally:
            sock.close()

    print("dns-name", outcome(lambda: socket.getaddrinfo("doesnotexist.google.com", 80)))
    print("dns-localhost", outcome(lambda: socket.getaddrinfo("localhost", 80)))
    print("dns-literal", outcome(lambda: socket.getaddrinfo("192.0.2.1", 80)))
    print("dns-byname", outcome(lambda: socket.gethostbyname("example.com")))
    print("dns-reverse", outcome(lambda: socket.gethostbyaddr("192.0.2.1")))
    print("connect-public", outcome(lambda: connect("192.0.2.1")))
    started = time.monotonic()
    print("connect-tarpit", outcome(lambda: connect("10.255.255.1")))
    print("tarpit-waited", time.monotonic() - started >= 0.4)
    print("session", requests.Session.__module__.split(".")[0], requests.Session.__name__,
          requests.session().__class__.__name__, requests.sessions.Session is requests.Session)
    """
)


def probe(swap: str) -> dict[str, str]:
    """Run the probe with the plugin in a fresh interpreter; its results by name."""
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), OBSERVABLE_SESSION_SWAP=swap)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.stdout.splitlines()}


@pytest.mark.parametrize("swap", ["", "compat"])
def test_fence_refuses_names_and_public_addresses(swap: str) -> None:
    """Only literals and localhost resolve; a public address is refused before any packet."""
    result = probe(swap)
    assert result["dns-name"] == "gaierror"
    assert result["dns-localhost"] == "ok" and result["dns-literal"] == "ok"
    assert result["dns-byname"] == "gaierror" and result["dns-reverse"] == "oserror:1"
    assert result["connect-public"] == "oserror:101"


def test_fence_turns_the_tarpit_into_a_connect_timeout() -> None:
    """10.255.255.1 goes to a loopback listener that never completes the handshake."""
    result = probe("")
    assert result["connect-tarpit"] == "timeout" and result["tarpit-waited"] == "True"


def test_swap_installs_a_session_class() -> None:
    """requests.Session becomes a class (subclassable); requests.session() returns one."""
    assert probe("compat")["session"] == "requests_suite_plugin CompatSession CompatSession True"
    assert probe("default")["session"] == "observable_session Session Session True"
    assert probe("")["session"] == "requests Session Session True"


def test_failures_and_session_do_not_import_each_other() -> None:
    """_failures gets the per-call state from _call, never from _session (no import circle)."""
    source = (ROOT / "src" / "observable_session" / "_failures.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "_session" not in imported and "_call" in imported
