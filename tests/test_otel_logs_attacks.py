"""OpenTelemetry logs under attack: a live session's key hidden in chained causes, notes,
exception groups, nested ``extra=`` values and odd messages never reaches an exported record.

Each case was checked to leak through the bare SDK ``LoggingHandler``.
"""

from __future__ import annotations

import builtins
import logging
from typing import Any

import pytest
import structlog

from observable_session import Session
from observable_session.logs import configure_logging
from observable_session.otel_logs import RedactingStructlogProcessor, redacting_log_handler
from tests.test_otel_logs import Logs, _text, logs  # noqa: F401

KEY = "attack-Secret_8Kp2w"
_GROUP: Any = getattr(builtins, "ExceptionGroup", None)


class Obj:
    """An object whose text is the key."""

    def __str__(self) -> str:
        return f"obj {KEY}"

    __repr__ = __str__


class Quiet(Exception):
    """An exception whose args are empty but whose text holds the key."""

    def __str__(self) -> str:
        return f"quiet {KEY}"


class Attr(Exception):
    """An exception holding the key in an attribute only."""

    def __init__(self) -> None:
        super().__init__("plain")
        self.detail = KEY


def raises(kind: str) -> BaseException:
    """An exception of ``kind``, raised and caught (so it has a traceback)."""
    try:
        if kind == "cause":
            try:
                raise ValueError(f"inner {KEY}")
            except ValueError as inner:
                raise RuntimeError("outer") from inner
        if kind == "context":
            try:
                raise ValueError(f"inner {KEY}")
            except ValueError:
                raise RuntimeError("outer")  # noqa: B904 - the implicit __context__ chain is the case
        if kind == "note":
            e = RuntimeError("noted")
            e.__notes__ = [f"note {KEY}"]  # add_note() is 3.11+; this is what it sets
            raise e
        if kind == "nested_args":
            raise RuntimeError({"k": [KEY]})
        if kind == "quiet":
            raise Quiet()
        if kind == "attr":
            raise Attr()
        if kind == "group":
            raise _GROUP("g", [ValueError(f"member {KEY}")])
        if kind == "bytes":
            raise RuntimeError(KEY.encode())
        if kind == "deep_cause":
            try:
                try:
                    raise ValueError(f"deepest {KEY}")
                except ValueError as a:
                    raise KeyError("mid") from a
            except KeyError as b:
                raise RuntimeError("top") from b
    except BaseException as exc:
        return exc
    raise AssertionError


EXC = ["cause", "context", "note", "nested_args", "quiet", "attr", "group", "bytes", "deep_cause"]
EXTRA = [
    {"data": {"nested": {"x": KEY}}},
    {"items": [KEY]},
    {"raw": KEY.encode()},
    {"obj": Obj()},
    {"tup": (KEY,)},
]


@pytest.mark.parametrize("path", ["configure", "handler"])
@pytest.mark.parametrize(
    "case",
    [f"exc:{k}" for k in EXC]
    + [f"extra:{i}" for i in range(len(EXTRA))]
    + ["msgobj", "argsdict", "stack"],
)
def test_stdlib_path_masks_hidden_keys(logs: Logs, path: str, case: str) -> None:  # noqa: F811
    """configure_logging(logger_provider=) and redacting_log_handler export no key."""
    s = Session(auth_headers={"X-API-Key": KEY})
    if path == "configure":
        configure_logging("INFO", logger_provider=logs.provider)
    else:
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        root.addHandler(redacting_log_handler(logs.provider))
    log = logging.getLogger("app")
    kind, _, arg = case.partition(":")
    if arg == "group" and _GROUP is None:
        pytest.skip("ExceptionGroup is Python 3.11+")
    if kind == "exc":
        log.error("failed", exc_info=raises(arg))
    elif kind == "extra":
        log.error("with extra", extra=EXTRA[int(arg)])
    elif kind == "msgobj":
        log.error(Obj())
    elif kind == "argsdict":
        log.error("%(k)s", {"k": KEY})
    elif kind == "stack":
        log.error("stack %s", "x", stack_info=True)
    recs = logs.records()
    assert recs
    for r in recs:
        assert KEY not in _text(r), _text(r)
    s.close()


@pytest.mark.parametrize("arg", EXC)
def test_structlog_path_masks_hidden_keys(logs: Logs, arg: str) -> None:  # noqa: F811
    """RedactingStructlogProcessor exports no key from an exception chain or nested fields."""
    pytest.importorskip(
        "opentelemetry.instrumentation.structlog",
        reason="opentelemetry-instrumentation-structlog (0.65b0+) is not installed",
    )
    if arg == "group" and _GROUP is None:
        pytest.skip("ExceptionGroup is Python 3.11+")
    s = Session(auth_headers={"X-API-Key": KEY})
    structlog.configure(
        processors=[
            RedactingStructlogProcessor(logs.provider),
            structlog.processors.KeyValueRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    structlog.get_logger("app").error(
        "boom", exc_info=raises(arg), extra_nested={"a": [KEY]}, obj=Obj()
    )
    recs = logs.records()
    assert recs
    for r in recs:
        assert KEY not in _text(r), _text(r)
    s.close()
