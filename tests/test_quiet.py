"""Unconfigured, the library is quiet: nothing on stdout, nothing below WARNING anywhere."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import structlog

from observable_session.logs import configure_logging
from observable_session.telemetry import _events
from observable_session.telemetry import _semconv as sc
from tests.conftest import Reply, Upstream

KEY = "quiet-secret-0123456789"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )


def _workload(upstream: Upstream, refused_url: str) -> str:
    """A success, a retried 503, and a refused connection with retries, then ``done``."""
    upstream.script("/ok", Reply(200))
    upstream.script("/flaky", Reply(503), Reply(200))
    return (
        "from observable_session import Session, ApiConnectionError\n"
        f"s = Session(base_url={upstream.url!r}, auth_headers={{'X-API-Key': {KEY!r}}},\n"
        "            sleep=lambda seconds: None)\n"
        "s.get('/ok')\n"
        "s.get('/flaky')\n"
        "try:\n"
        f"    s.get({refused_url!r})\n"
        "except ApiConnectionError:\n"
        "    pass\n"
        "s.close()\n"
    )


def test_unconfigured_writes_nothing_to_stdout(upstream: Upstream, refused_url: str) -> None:
    """With structlog and logging unconfigured, a retried and a refused request print nothing."""
    out = _run(_workload(upstream, refused_url))
    assert out.stdout == ""


def test_unconfigured_stderr_holds_only_warnings(upstream: Upstream, refused_url: str) -> None:
    """Python's last-resort handler shows the library's warnings, never info or debug."""
    out = _run(_workload(upstream, refused_url))
    lines = out.stderr.splitlines()
    assert lines, "the failed attempts are warnings and should be shown"
    assert all(
        line.startswith((sc.EVENT_ATTEMPT_FAILED, sc.EVENT_RETRIES_EXHAUSTED)) for line in lines
    ), out.stderr
    assert sc.EVENT_RETRY_SCHEDULED not in out.stderr
    assert sc.EVENT_REQUEST_COMPLETED not in out.stderr
    assert KEY not in out.stderr


def test_unconfigured_events_reach_the_stdlib_logger(upstream: Upstream) -> None:
    """An application's stdlib set-up at DEBUG receives every event, fields as attributes."""
    upstream.script("/flaky", Reply(503), Reply(200))
    code = (
        "import logging, json, sys\n"
        "records = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): records.append((r.levelname, r.getMessage(), r.attempts\n"
        "                                      if hasattr(r, 'attempts') else None))\n"
        "logging.getLogger('observable_session').addHandler(H())\n"
        "logging.getLogger('observable_session').setLevel(logging.DEBUG)\n"
        "from observable_session import Session\n"
        f"s = Session(base_url={upstream.url!r}, sleep=lambda seconds: None)\n"
        "s.get('/flaky')\n"
        "print(json.dumps(records))\n"
    )
    records = json.loads(_run(code).stdout)
    events = [(level, message.split()[0]) for level, message, _ in records]
    assert events == [
        ("WARNING", sc.EVENT_ATTEMPT_FAILED),
        ("INFO", sc.EVENT_RETRY_SCHEDULED),
        ("DEBUG", sc.EVENT_REQUEST_COMPLETED),
    ]
    assert records[-1][2] == 2


def test_configured_structlog_still_gets_every_event(upstream: Upstream) -> None:
    """configure_logging("DEBUG") keeps the JSON lines of today, debug event included."""
    upstream.script("/flaky", Reply(503), Reply(200))
    code = (
        "import sys\n"
        "from observable_session.logs import configure_logging\n"
        "configure_logging('DEBUG', json=True, stream=sys.stdout)\n"
        "from observable_session import Session\n"
        f"s = Session(base_url={upstream.url!r}, sleep=lambda seconds: None)\n"
        "s.get('/flaky', url_template='/flaky')\n"
    )
    lines = [json.loads(line) for line in _run(code).stdout.splitlines()]
    ours = [line for line in lines if line.get("logger") == sc.LOGGER_NAME]
    assert [line["event"] for line in ours] == [
        sc.EVENT_ATTEMPT_FAILED,
        sc.EVENT_RETRY_SCHEDULED,
        sc.EVENT_REQUEST_COMPLETED,
    ]
    assert ours[-1]["url_template"] == "/flaky" and ours[-1]["level"] == "debug"


@pytest.fixture
def restore_structlog() -> object:
    """Put structlog and the root logger back as they were."""
    import logging

    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_structlog")
def test_debug_is_off_under_configure_logging_info() -> None:
    """configure_logging("INFO") filters debug through the stdlib level: nothing is built."""
    import io

    configure_logging("INFO", stream=io.StringIO())
    assert not _events.enabled("debug") and _events.enabled("info")
    configure_logging("DEBUG", stream=io.StringIO())
    assert _events.enabled("debug")


@pytest.mark.usefixtures("restore_structlog")
def test_debug_is_off_under_a_filtering_bound_logger() -> None:
    """A make_filtering_bound_logger(INFO) set-up filters debug before any event is built."""
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    assert not _events.enabled("debug") and _events.enabled("warning")


@pytest.mark.usefixtures("restore_structlog")
def test_no_debug_event_is_built_at_info(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under configure_logging("INFO") a request never hands a debug event to the logger."""
    import io

    configure_logging("INFO", stream=io.StringIO())
    levels: list[str] = []
    real = _events.emit
    monkeypatch.setattr(
        "observable_session.telemetry._record.emit",
        lambda level, event, fields: (levels.append(level), real(level, event, fields)),
    )
    from observable_session import Session

    upstream.script("/flaky", Reply(503), Reply(200))
    with Session(base_url=upstream.url, sleep=lambda seconds: None) as s:
        s.get("/flaky")
    assert levels == ["warning", "info"]


def test_unconfigured_wait_is_quiet(upstream: Upstream) -> None:
    """A wait that completes logs at info: unconfigured, nothing reaches stdout or stderr."""
    upstream.script("/jobs/1", Reply(200, {"state": "RUNNING"}), Reply(200, {"state": "DONE"}))
    code = (
        "from observable_session import Session\n"
        f"s = Session(base_url={upstream.url!r}, sleep=lambda seconds: None)\n"
        "s.wait('/jobs/1', until=lambda r: r.json()['state'] == 'DONE', interval=1)\n"
    )
    out = _run(code)
    assert out.stdout == "" and out.stderr == ""
