"""Leaks found by hunting beyond the proof's draws, each pinned by a deterministic test.

Each test fails on the code before its fix: the text the test masks is the one the hunt
produced, cut down to what still leaked.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observable_session import ApiHTTPError, Session
from observable_session.redaction import REDACTED, RedactingSpanExporter, Redactor, redact_event
from tests.conftest import Reply, Upstream


class Owner:
    """Something that owns secrets and can be weakly referenced."""


def _redactor(*values: str) -> tuple[Redactor, Owner]:
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, list(values))
    return r, owner


def latin1_read(text: str) -> str:
    """``text``'s UTF-8 read back as latin-1 (``requests`` reads ``text/html`` so)."""
    return text.encode("utf-8").decode("latin-1")


# A key whose escaped characters "Þ°" (\xde\xb0) are themselves a UTF-8 pair read as
# latin-1: repairing the whole decoded text turns them into U+07B0 and loses the key.
KEY = "Zq-k3y-\xc8\xde\xb0-9"
PAIR = "\xde\xb0"
HALF = "Zq-k3y-" + latin1_read("\xc8") + "&THORN;&deg;-9"


def test_escaped_characters_that_look_like_utf8_read_as_latin1_are_not_repaired() -> None:
    """``È`` as UTF-8 read as latin-1, ``Þ°`` as entities: only the raw text is repaired."""
    r, owner = _redactor(KEY)
    assert r.mask(f"<p>Rejected: {HALF}</p>") == f"<p>Rejected: {REDACTED}</p>"
    assert owner


def test_a_half_escaped_latin1_read_page_inside_percent_encoding_is_masked() -> None:
    """The same page percent-encoded (a redirect's query): the text itself is ASCII."""
    r, owner = _redactor(KEY)
    for spelled in (HALF, "Zq-k3y-" + latin1_read("\xc8") + "&#xDE;&#176;-9"):
        text = f"/landing?echo={quote(spelled, safe='')}"
        assert text.isascii()
        assert r.mask(text) == f"/landing?echo={REDACTED}", spelled
    assert owner


def test_a_half_escaped_latin1_read_page_inside_json_escapes_is_masked() -> None:
    """The page in a JSON string with ``ensure_ascii``: JSON first, then HTML, repaired.

    Decoding both families at once reads the same text as JSON then HTML, so the second
    path was dropped as a duplicate; only on it are the ``\\u00c3\\u0088`` characters raw.
    """
    r, owner = _redactor(KEY)
    spelled = "Zq-k3y-\\u00c3\\u0088&THORN;&deg;-9"
    text = '{"detail": "' + spelled + '"}'
    assert r.mask(text) == '{"detail": "' + REDACTED + '"}'
    assert owner


def test_a_seed_style_header_echoed_half_escaped_in_a_page_is_masked_in_the_app_log(
    upstream: Upstream,
) -> None:
    """End to end: ``session.headers``, an HTML page read as latin-1, the app logs ``.text``."""
    page = "<html><body><p>Rejected X-Auth-Token: " + KEY.replace(PAIR, "&THORN;&deg;")
    upstream.script("/jobs", Reply(401, page.encode(), {"Content-Type": "text/html"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        api.headers["X-Auth-Token"] = KEY
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs")
    response = caught.value.response
    assert response is not None
    assert HALF in response.text  # requests read the UTF-8 page as latin-1
    event = redact_event(None, "error", {"event": "job failed", "body": response.text})
    assert event["body"] == f"<html><body><p>Rejected X-Auth-Token: {REDACTED}"
    assert HALF not in str(caught.value)


def test_a_numeric_reference_to_a_control_character_is_read_as_that_character() -> None:
    """``&#7;`` is U+0007 in an echo (``html.unescape`` drops it, as a browser would)."""
    key = "Zq-k3y\x07-0123"
    r, owner = _redactor(key)
    assert r.mask("<p>Rejected: Zq-k3y&#7;-0123</p>") == f"<p>Rejected: {REDACTED}</p>"
    assert r.mask("<p>Rejected: Zq-k3y&#x0007;-0123</p>") == f"<p>Rejected: {REDACTED}</p>"
    assert owner


def test_a_numeric_reference_in_the_c1_range_is_read_as_its_code_point() -> None:
    """``&#136;`` is U+0088, not windows-1252's U+02C6: the UTF-8 of ``È`` read as latin-1.

    What a server that reads the UTF-8 bytes as latin-1 (a WSGI path) and escapes every
    non-ASCII character as a numeric reference (``xmlcharrefreplace``) writes.
    """
    key = "Zq-k3y-\xc8-9"
    r, owner = _redactor(key)
    spelled = latin1_read(key).encode("ascii", "xmlcharrefreplace").decode()
    assert spelled == "Zq-k3y-&#195;&#136;-9"
    assert r.mask(f"<p>{spelled}</p>") == f"<p>{REDACTED}</p>"
    assert owner


def test_an_entity_spelled_key_across_the_body_limit_leaves_no_head(upstream: Upstream) -> None:
    """The body is read to ``error_body_limit`` and cut at a delimiter: ``;`` and ``&`` are
    inside an HTML-escaped key, so the cut kept ``&#90;&#113;&#45;…`` (``Zq-…``)."""
    key = "Zq-k3y-0123456789abcdef"
    spelled = "".join(f"&#{ord(c)};" for c in key)
    body = f"<p>Rejected key {spelled} for you</p>".encode()
    upstream.script("/jobs", Reply(401, body, {"Content-Type": "text/html"}))
    for limit in range(len("<p>Rejected key ") + 1, len(body) - len(" for you</p>")):
        with Session(
            base_url=upstream.url,
            retries_total=0,
            auth_headers={"X-API-Key": key},
            error_body_limit=limit,
        ) as api:
            with pytest.raises(ApiHTTPError) as caught:
                api.get("/jobs")
        message = str(caught.value)
        assert message.endswith(": <p>Rejected key"), (limit, message)


@pytest.mark.parametrize("scheme", ["", "Bearer "])
def test_base64_of_a_latin1_headers_wire_bytes_is_masked(scheme: str) -> None:
    """A header travels as latin-1: base64 of those bytes (not of its UTF-8) is a form."""
    key = "Zq-k\xe9y-0123456789"
    r, owner = _redactor(scheme + key)
    for part in {scheme + key, key}:
        raw = part.encode("latin-1")
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            for text in (encoded.decode(), encoded.decode().rstrip("=")):
                assert REDACTED in r.mask(f"echo {text}"), (part, text)
                assert text not in r.mask(f"echo {text}")
    assert owner


def test_a_latin1_key_in_raw_bytes_of_a_latin1_body_is_masked(upstream: Upstream) -> None:
    """``response.content`` logged as it is: an ISO-8859-1 body carries the key's latin-1."""
    key = "Zq-k\xe9y-0123456789"
    body = f"rejected {key}".encode("latin-1")
    upstream.script("/jobs", Reply(401, body, {"Content-Type": "text/plain; charset=iso-8859-1"}))
    with Session(base_url=upstream.url, retries_total=0, auth_headers={"X-API-Key": key}) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs")
        response = caught.value.response
        assert response is not None and response.content == body
        event = redact_event(None, "error", {"event": "reply", "content": response.content})
    assert event["content"] == f"rejected {REDACTED}".encode()
    assert key not in str(caught.value)


def _utf16_reference(char: str) -> str:
    """``char`` as JavaScript's ``'&#' + s.charCodeAt(i) + ';'`` escapes it: per UTF-16 unit."""
    units = char.encode("utf-16-be", "surrogatepass")
    return "".join(
        f"&#{int.from_bytes(units[i : i + 2], 'big')};" for i in (0, 2)[: len(units) // 2]
    )


def test_references_to_the_halves_of_a_surrogate_pair_are_one_character() -> None:
    """``&#55357;&#56832;`` is U+1F600: an escaper that walks UTF-16 units writes that."""
    key = "Zq-k3y-\U0001f600-0123456789"
    r, owner = _redactor(key)
    every = "".join(_utf16_reference(c) for c in key)
    astral = "".join(_utf16_reference(c) if ord(c) > 0xFFFF else c for c in key)
    assert "&#55357;&#56832;" in astral
    for spelled in (every, astral, quote(astral, safe="")):
        assert r.mask(f"<p>{spelled}</p>") == f"<p>{REDACTED}</p>", spelled
    assert owner


def test_the_span_exporter_masks_event_names_of_any_instrumentation() -> None:
    """An event named after what it saw (``add_event(f"retry with {key}")``) is masked too."""
    key = "Zq-k3y-0123456789abcdef"
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(spans)))
    with Session(auth_headers={"X-API-Key": key}):
        with provider.get_tracer("other.instrumentation").start_as_current_span("job") as span:
            span.add_event(f"retry with {key}", {"detail": key})
    provider.shutdown()
    (event,) = spans.get_finished_spans()[0].events
    assert event.name == f"retry with {REDACTED}"
    assert dict(event.attributes or {}) == {"detail": REDACTED}


@pytest.mark.parametrize("ctype", ["application/json", "text/plain; charset=utf-8"])
def test_a_latin1_key_echoed_as_its_wire_bytes_into_a_utf8_body_is_masked(
    upstream: Upstream, ctype: str
) -> None:
    """The body holds the header's latin-1 bytes; read as UTF-8, ``é`` becomes U+FFFD and
    the message showed every other character of the key."""
    key = "Zq-k\xe9y-0123456789abc"
    body = b'{"message": "rejected ' + key.encode("latin-1") + b'"}'
    upstream.script("/jobs", Reply(401, body, {"Content-Type": ctype}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        api.headers["X-API-Key"] = key
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs")
        response = caught.value.response
        assert response is not None and "Zq-k\ufffdy-0123456789abc" in response.text
        event = redact_event(None, "error", {"event": "reply", "body": response.text})
    assert str(caught.value).endswith(f": rejected {REDACTED}")
    assert event["body"] == f'{{"message": "rejected {REDACTED}"}}'


def test_two_secrets_overlapping_in_an_echo_leave_neither_head() -> None:
    """One session's key ends where another's begins: replaced one after the other, the
    first one's head stayed (``Zq-first-key-REDACTED``)."""
    first, second = "Zq-first-key-0123", "0123-second-key-tail"
    r, owner = _redactor(first)
    other = Owner()
    r.set_secrets(other, [second])
    assert r.mask("echo Zq-first-key-0123-second-key-tail end") == f"echo {REDACTED} end"
    escaped = "echo Zq-first-key-0123-second-key-tail&#46; end"
    assert r.mask(escaped) == f"echo {REDACTED}&#46; end"
    assert owner and other


def test_base64_of_a_stripped_non_ascii_credential_of_three_characters_is_masked() -> None:
    """The proof's find: ``Token ĉòĦ\\xa0`` echoed as base64 of its stripped credential.

    ``ĉòĦ`` is three characters (too short to mask as text) but six UTF-8 bytes: its base64
    ``xInDssSm`` was left in the message.
    """
    value = "Token \u0109\xf2\u0126\xa0"
    r, owner = _redactor(value)
    credential = value.split(" ", 1)[1].strip()
    raw = credential.encode()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        assert r.mask(f"echo {encoded.decode()} end") == f"echo {REDACTED} end"
    assert owner
