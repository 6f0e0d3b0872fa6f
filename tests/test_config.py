"""Every argument is checked once, at construction, on attribute set, and per call.

A refused argument raises :class:`InvalidConfigError` naming the argument and the rule, never
the value, and leaves nothing half-built (a setter keeps the old value).
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from urllib3.util import Timeout

from observable_session import ApiHTTPError, InvalidConfigError, Session
from observable_session.telemetry import _semconv as sc
from tests.conftest import Otel, Reply, Upstream

NAN = math.nan
INF = math.inf
SECRETISH = "sk-value-that-must-not-be-echoed-1234"


class _Marker:
    """A value whose repr would show up in a message that echoed it."""

    def __repr__(self) -> str:
        return SECRETISH

    __str__ = __repr__


MARK = _Marker()

# (argument, bad value, what the value is): every argument walked with NaN, +/-inf, negative,
# zero, wrong type and wrong shape where the rule makes it bad.
_SECONDS = [
    (NAN, "nan"),
    (INF, "+inf"),
    (-INF, "-inf"),
    (-1, "negative"),
    (-0.5, "negative float"),
    ("1", "str"),
    (True, "bool"),
    (None, "None"),
    ([1], "list"),
    (MARK, "object"),
]
CASES: list[tuple[str, Any, str]] = []
for _name in ("backoff_factor", "backoff_max", "backoff_jitter", "retry_after_max"):
    CASES += [(_name, value, what) for value, what in _SECONDS]
CASES += [("deadline", value, what) for value, what in _SECONDS if value is not None]
CASES += [("deadline", 0, "zero"), ("deadline", 0.0, "zero float")]
CASES += [("deadline", 1e10, "beyond a socket's range"), ("deadline", 10**400, "huge int")]
CASES += [("backoff_max", 1e10, "beyond sleep's range"), ("backoff_factor", 10**400, "huge int")]
for _name in ("retries_total", "retries_connect"):
    CASES += [
        (_name, -1, "negative"),
        (_name, True, "bool"),
        (_name, 1.0, "float"),
        (_name, NAN, "nan"),
        (_name, INF, "+inf"),
        (_name, -INF, "-inf"),
        (_name, "2", "str"),
        (_name, None, "None"),
        (_name, MARK, "object"),
    ]
CASES += [
    ("timeout", (1, 2, 3), "3-tuple"),
    ("timeout", (1,), "1-tuple"),
    ("timeout", -1, "negative"),
    ("timeout", 0, "zero"),
    ("timeout", "30", "str"),
    ("timeout", NAN, "nan"),
    ("timeout", INF, "+inf"),
    ("timeout", -INF, "-inf"),
    ("timeout", [1, 2], "list"),
    ("timeout", (1, NAN), "nan in pair"),
    ("timeout", (0, 1), "zero in pair"),
    ("timeout", (1, "2"), "str in pair"),
    ("timeout", True, "bool"),
    ("timeout", MARK, "object"),
    ("timeout", 1e10, "beyond a socket's range"),
    ("timeout", Timeout(read=NAN), "urllib3 Timeout with nan"),
    ("timeout", Timeout(total=INF), "urllib3 Timeout with inf"),
    ("headers", "abc", "str"),
    ("headers", [("X", "y")], "list of pairs"),
    ("headers", {"X": 1}, "int value"),
    ("headers", {"X": NAN}, "nan value"),
    ("headers", {"X": MARK}, "object value"),
    ("headers", {"X": f"{SECRETISH}\r\nInjected: 1"}, "CRLF value"),
    ("headers", {"Bad Name": "v"}, "invalid name"),
    ("headers", {1: "v"}, "int name"),
    ("auth_headers", "abc", "str"),
    ("auth_headers", [("X-Key", SECRETISH)], "list of pairs"),
    ("auth_headers", {"X-Key": 1234}, "int value"),
    ("auth_headers", {"X-Key": MARK}, "object value"),
    ("auth_headers", MARK, "object"),
    ("sleep", None, "None"),
    ("sleep", 0, "zero"),
    ("sleep", "time.sleep", "str"),
    ("base_url", f"https://user:{SECRETISH}@example.test/api", "password in userinfo"),
    ("base_url", f"https://{SECRETISH}@example.test/api", "token as userinfo"),
    ("base_url", "ftp://example.test", "not http"),
    ("base_url", "/relative", "relative"),
    ("base_url", 1, "int"),
    ("base_url", NAN, "nan"),
    ("auth_origins", ["https://example.test/some/path"], "entry with a path"),
    ("auth_origins", ["https://example.test?q=1"], "entry with a query"),
    ("auth_origins", [f"https://u:{SECRETISH}@example.test"], "entry with userinfo"),
    ("auth_origins", "https://example.test", "str"),
    ("auth_origins", [1], "int entry"),
    ("auth_origins", 1, "int"),
    ("auth_origins", ["example.test"], "no scheme"),
    ("raise_for_status", "false", "str"),
    ("raise_for_status", 0, "zero"),
    ("raise_for_status", NAN, "nan"),
    ("raise_for_status", None, "None"),
    ("retry_post_on_status", "no", "str"),
    ("retry_post_on_status", 1, "int"),
    ("retry_post_on_status", None, "None"),
    ("error_body_limit", -1, "negative"),
    ("error_body_limit", 1.5, "float"),
    ("error_body_limit", NAN, "nan"),
    ("error_body_limit", INF, "+inf"),
    ("error_body_limit", True, "bool"),
    ("error_body_limit", "64k", "str"),
    ("tracer_provider", "provider", "str"),
    ("tracer_provider", 0, "zero"),
    ("meter_provider", MARK, "object"),
    ("retry_budget", "abc", "str"),
    ("retry_budget", {}, "dict"),
    ("circuit_breaker", 1, "int"),
    ("idempotency_key", "bad header", "not a token"),
    ("idempotency_key", "X\r\nY", "CRLF"),
    ("retry_after_exceeded", "maybe", "unknown word"),
    ("retry_after_exceeded", True, "bool"),
]


def _leaks(message: str, value: object) -> bool:
    texts = [SECRETISH]
    if isinstance(value, dict):
        texts += [repr(v) for v in value.values()]
    elif isinstance(value, (str, list, tuple)) and value not in ("", ()):
        texts.append(repr(value))
    return any(t in message for t in texts)


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, v, _ in CASES], ids=[f"{n}-{w}" for n, _, w in CASES]
)
def test_bad_argument_is_refused_at_construction(name: str, value: Any) -> None:
    """InvalidConfigError at construction, naming the argument, never echoing the value."""
    with pytest.raises(InvalidConfigError) as info:
        Session(**{name: value})
    message = str(info.value)
    assert name in message
    assert not _leaks(message, value), message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("backoff_factor", 0),
        ("backoff_max", 0.0),
        ("backoff_jitter", 0),
        ("retry_after_max", 0),
        ("retries_total", 0),
        ("retries_connect", 0),
        ("deadline", None),
        ("deadline", 0.01),
        ("timeout", None),
        ("timeout", (1, None)),
        ("timeout", (0.5, 2)),
        ("timeout", 3),
        ("timeout", Timeout(connect=1, read=2)),
        ("deadline", 1e9),
        ("headers", {"X-Trace": "a", "X-Bytes": b"b"}),
        ("auth_headers", None),
        ("auth_origins", ["https://example.test/", "http://127.0.0.1:8080"]),
        ("error_body_limit", 0),
        ("base_url", "https://example.test/api/v1"),
    ],
)
def test_good_argument_is_accepted(name: str, value: Any) -> None:
    """Boundary values that are valid still build a session."""
    Session(**{name: value}).close()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (n, v)
        for n, v, _ in CASES
        if n
        in (
            "timeout",
            "deadline",
            "base_url",
            "auth_headers",
            "headers",
            "raise_for_status",
            "error_body_limit",
        )
    ],
)
def test_bad_attribute_is_refused_and_old_value_kept(name: str, value: Any) -> None:
    """Assigning a bad value raises InvalidConfigError and leaves the attribute as it was."""
    session = Session(base_url="https://example.test/api", auth_headers={"X-Key": "k-1234"})
    before = getattr(session, name)
    with pytest.raises(InvalidConfigError) as info:
        setattr(session, name, value)
    assert name in str(info.value) and not _leaks(str(info.value), value)
    assert getattr(session, name) is before
    session.close()


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, v, _ in CASES if n in ("timeout", "deadline")]
)
def test_bad_per_call_argument_sends_nothing(upstream: Upstream, name: str, value: Any) -> None:
    """Per-call timeout=/deadline= get the same checks: typed error, nothing sent."""
    with Session(base_url=upstream.url) as session:
        with pytest.raises(InvalidConfigError) as info:
            session.get("/x", **{name: value})
        assert name in str(info.value)
        prepared = session.prepare_request(__import__("requests").Request("GET", upstream.url))
        with pytest.raises(InvalidConfigError):
            session.send(prepared, **{name: value})
    assert upstream.hits() == 0


def test_base_url_repr_cannot_show_a_password() -> None:
    """A base_url with a password is refused, so repr never shows it."""
    with pytest.raises(InvalidConfigError) as info:
        Session(base_url=f"https://user:{SECRETISH}@example.test")
    assert SECRETISH not in str(info.value) + repr(info.value)


class _TellNoSeek:
    """A body with read, tell and __iter__ but no seek: it cannot be rewound."""

    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._io.read(n)

    def tell(self) -> int:
        return self._io.tell()

    def __iter__(self) -> Any:
        return iter([self._io.read()])


def test_body_without_seek_is_not_replayable(upstream: Upstream, otel: Otel) -> None:
    """read/tell/__iter__ without seek: the 503 is final, no retry scheduled, counted or sent."""
    upstream.script("/b", Reply(503, b"busy"), Reply(200))
    sleeps: list[float] = []
    with Session(base_url=upstream.url, sleep=sleeps.append, **otel.providers()) as session:
        with pytest.raises(ApiHTTPError) as info:
            session.put("/b", data=_TellNoSeek(b"payload"))
    assert info.value.status_code == 503 and info.value.attempts == 1
    assert upstream.hits("/b") == 1 and sleeps == []
    assert sum(p.value for p in otel.points(sc.METRIC_RETRIES)) == 0
    assert len(otel.spans("CLIENT")) == 1


def test_headers_cannot_be_set_to_none() -> None:
    """session.headers = None would break requests itself: refused, old headers kept."""
    session = Session()
    before = session.headers
    with pytest.raises(InvalidConfigError, match="headers"):
        session.headers = None
    assert session.headers is before
    session.close()


def test_backoff_of_a_very_late_retry_does_not_overflow() -> None:
    """retries_total may be huge: the 2000th backoff is capped, not an OverflowError."""
    from observable_session import RetryPolicy

    assert RetryPolicy(total=5000, backoff_max=7.0).backoff(2000) == 7.0


@pytest.mark.parametrize(
    "headers",
    [{"X-Key": 1234}, {"X-Key": f"{SECRETISH}\r\nEvil: 1"}, {"X-Key": MARK}],
    ids=["int", "crlf", "object"],
)
def test_bad_per_call_headers_are_refused_without_echo(upstream: Upstream, headers: Any) -> None:
    """Per-call headers get the constructor's check: named, never echoed, nothing sent."""
    with Session(base_url=upstream.url) as session, pytest.raises(InvalidConfigError) as info:
        session.get("/x", headers=headers)
    assert "X-Key" in str(info.value) and not _leaks(str(info.value), headers)
    assert upstream.hits() == 0


def test_per_call_header_none_still_removes_a_session_header(upstream: Upstream) -> None:
    """requests' idiom headers={"User-Agent": None} keeps working."""
    with Session(base_url=upstream.url) as session:
        session.get("/x", headers={"User-Agent": None})
    # (urllib3 then sends its own default User-Agent)
    assert not upstream.seen[0].headers.get("User-Agent", "").startswith("observable-session")


ALL_ARGUMENTS = (
    "base_url",
    "headers",
    "auth_headers",
    "retries_total",
    "retries_connect",
    "backoff_factor",
    "auth_origins",
    "timeout",
    "deadline",
    "retry_post_on_status",
    "raise_for_status",
    "backoff_max",
    "backoff_jitter",
    "retry_after_max",
    "tracer_provider",
    "meter_provider",
    "sleep",
    "error_body_limit",
    "retry_budget",
    "circuit_breaker",
    "idempotency_key",
    "retry_after_exceeded",
)
ZERO_IS_VALID = {
    "retries_total",
    "retries_connect",
    "backoff_factor",
    "backoff_max",
    "backoff_jitter",
    "retry_after_max",
    "error_body_limit",
}


def test_the_table_covers_every_keyword_of_the_constructor() -> None:
    """ALL_ARGUMENTS is the constructor's own keyword list: no argument escapes the walk."""
    import inspect

    params = inspect.signature(Session.__init__).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == set(ALL_ARGUMENTS)


@pytest.mark.parametrize("name", ALL_ARGUMENTS)
@pytest.mark.parametrize("value", [NAN, INF, -INF, -1, -0.5, 0], ids=repr)
def test_every_argument_refuses_nan_infinities_negatives_and_zero(name: str, value: Any) -> None:
    """NaN, +/-inf and negatives are refused by every argument; zero wherever it means nothing."""
    if value == 0 and name in ZERO_IS_VALID:
        Session(**{name: value}).close()
        return
    with pytest.raises(InvalidConfigError) as info:
        Session(**{name: value})
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("path_params", 1),
        ("path_params", NAN),
        ("path_params", ["job_id", "1"]),
        ("path_params", {1: "x"}),
        ("path_params", MARK),
        ("url_template", 1),
        ("url_template", b"/jobs/{job_id}"),
        ("url_template", ["/jobs"]),
        ("url_template", MARK),
    ],
    ids=repr,
)
def test_bad_per_call_route_arguments_are_typed(upstream: Upstream, name: str, value: Any) -> None:
    """Per-call path_params=/url_template= of the wrong type: typed error, nothing sent."""
    kwargs: dict[str, Any] = {"path_params": {"job_id": "1"}, name: value}
    with Session(base_url=upstream.url) as session, pytest.raises(InvalidConfigError) as info:
        session.get("/jobs/{job_id}", **kwargs)
    assert name in str(info.value) and SECRETISH not in str(info.value)
    assert upstream.hits() == 0


@pytest.mark.parametrize(
    "build",
    [
        lambda: __import__("observable_session").RetryBudget(max_tokens=10**400),
        lambda: __import__("observable_session").RetryBudget(token_ratio=10**400),
        lambda: __import__("observable_session").CircuitBreaker(break_duration=10**400),
        lambda: __import__("observable_session").CircuitBreaker(failure_ratio=10**400),
        lambda: Session().wait("http://127.0.0.1:1/x", until=bool, interval=10**400),
        lambda: Session().wait("http://127.0.0.1:1/x", until=bool, deadline=10**400),
        lambda: Session().wait("http://127.0.0.1:1/x", until=bool, jitter=10**400),
    ],
)
def test_an_int_too_large_for_a_float_is_refused_typed(build: Any) -> None:
    """An int beyond a float's range (10**400) is refused like infinity, not an OverflowError."""
    with pytest.raises(InvalidConfigError):
        build()
