"""The redactor: secret forms, sensitive names, URLs, structures, exception chains."""

from __future__ import annotations

import base64
import gc
import json
import threading
import traceback
from urllib.parse import quote, quote_plus

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode
from requests.structures import CaseInsensitiveDict

from observable_session import redaction
from observable_session.redaction import (
    DEFAULT_REDACTOR,
    REDACTED,
    EventRedactor,
    MaskedException,
    RedactingSpanExporter,
    Redactor,
    derived_forms,
    redact_event,
)

TOKEN = "s3cr3t-T0ken_Zq9"


class Owner:
    """Something that owns secrets and can be weakly referenced."""


@pytest.fixture
def redactor() -> Redactor:
    """A fresh redactor knowing ``Bearer TOKEN``."""
    r = Redactor()
    r.owner = Owner()  # type: ignore[attr-defined]
    r.set_secrets(r.owner, [f"Bearer {TOKEN}"])  # type: ignore[attr-defined]
    return r


def test_registered_value_is_masked(redactor: Redactor) -> None:
    """The full header value is replaced by REDACTED."""
    assert redactor.mask(f"sent Bearer {TOKEN} upstream") == f"sent {REDACTED} upstream"


def test_credential_after_scheme_is_masked_alone(redactor: Redactor) -> None:
    """The credential after ``Bearer`` is masked wherever it appears on its own."""
    assert redactor.mask(f"token={TOKEN};") == f"token={REDACTED};"


def test_url_encoded_forms_are_masked() -> None:
    """quote, quote_plus and lower-case percent escapes of a secret are masked."""
    r = Redactor()
    owner = Owner()
    secret = "p@ss w/rd+%&é"
    r.set_secrets(owner, [secret])
    forms = [quote(secret, safe=""), quote_plus(secret), quote(secret, safe="").lower()]
    assert [r.mask(f"?q={form}&x=1") for form in forms] == [f"?q={REDACTED}&x=1"] * 3


def test_json_escaped_form_is_masked() -> None:
    """A secret with quotes and backslashes is masked in its JSON-escaped spelling."""
    r = Redactor()
    owner = Owner()
    secret = "a\"b\\c'd"
    r.set_secrets(owner, [secret])
    assert r.mask(json.dumps({"v": secret})) == json.dumps({"v": REDACTED})


def test_repr_escaped_form_is_masked() -> None:
    """A secret is masked in the spelling ``repr`` gives it."""
    r = Redactor()
    owner = Owner()
    secret = "tab\there'quote"
    r.set_secrets(owner, [secret])
    assert secret[:6] not in r.mask(repr({"v": secret}))


def test_basic_credential_decoded_and_parts_are_masked() -> None:
    """For Basic, the decoded ``user:pass`` and the password are masked, the user alone not."""
    r = Redactor()
    owner = Owner()
    encoded = base64.b64encode(b"alice:hunter22").decode()
    r.set_secrets(owner, [f"Basic {encoded}"])
    masked = r.mask(f"{encoded} alice:hunter22 hunter22 alice")
    assert masked == " ".join([REDACTED] * 3) + " alice"


def test_short_forms_are_never_registered() -> None:
    """Parts shorter than four characters are not masked, so ordinary text is not garbled."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, [f"Basic {base64.b64encode(b'bob:longpassword').decode()}"])
    assert r.mask("bob ran") == "bob ran"


def test_derived_forms_are_at_least_four_characters() -> None:
    """Every derived form has at least four characters."""
    assert all(len(f) >= 4 for f in derived_forms("Basic " + base64.b64encode(b"a:bc").decode()))


def test_prefix_secret_never_leaves_the_longer_ones_tail() -> None:
    """With one secret a prefix of another, the longer one is masked whole."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, ["abcd1234", "abcd1234WXYZ"])
    assert r.mask("x abcd1234WXYZ y abcd1234 z") == f"x {REDACTED} y {REDACTED} z"


def test_regex_metacharacters_are_literal() -> None:
    """A secret made of regex metacharacters is matched literally."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, [".*+?[](){}|^$\\"])
    assert r.mask("keep this .*+?[](){}|^$\\ not that") == f"keep this {REDACTED} not that"


def test_non_ascii_secret_is_masked() -> None:
    """A secret with characters outside ASCII is masked in its raw and escaped spellings."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, ["clé-ünï☃"])
    assert r.mask(json.dumps("clé-ünï☃") + " clé-ünï☃") == f'"{REDACTED}" {REDACTED}'


def test_text_without_secrets_is_returned_as_is(redactor: Redactor) -> None:
    """Nothing to mask: the very same string comes back."""
    text = "observable_session.attempt.failed GET https://api.example.com/v1/jobs/42?page=2"
    assert redactor.mask(text) is text


def test_set_secrets_replaces_the_owners_previous_values(redactor: Redactor) -> None:
    """Registering new values for an owner forgets its old ones."""
    redactor.set_secrets(redactor.owner, ["Bearer rotated-Cred-9"])  # type: ignore[attr-defined]
    assert redactor.mask(f"{TOKEN} rotated-Cred-9") == f"{TOKEN} {REDACTED}"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_forget_keeps_values_masked_for_the_grace_period() -> None:
    """After forget, the owner's values stay masked until the grace period is over."""
    clock = FakeClock()
    r = Redactor(grace_seconds=600, clock=clock)
    owner = Owner()
    r.set_secrets(owner, [TOKEN])
    r.forget(owner)
    clock.now += 599
    assert r.mask(TOKEN) == REDACTED
    clock.now += 2
    assert r.mask(TOKEN) == TOKEN


def test_forget_without_grace_drops_the_values_at_once(redactor: Redactor) -> None:
    """``forget(owner, grace=False)`` drops the values immediately."""
    redactor.forget(redactor.owner, grace=False)  # type: ignore[attr-defined]
    assert redactor.mask(TOKEN) == TOKEN


def test_grace_keeps_a_bounded_number_of_owners() -> None:
    """Past ``grace_max_owners`` forgotten owners, the oldest one's values go first."""
    r = Redactor(grace_max_owners=2, clock=FakeClock())
    owners = [Owner() for _ in range(3)]
    values = [f"{TOKEN}-owner-{i}" for i in range(3)]
    for owner, value in zip(owners, values, strict=True):
        r.set_secrets(owner, [value])
        r.forget(owner)
    assert [r.mask(v) for v in values] == [values[0], REDACTED, REDACTED]


def test_values_of_a_collected_owner_stay_masked_for_the_grace_period() -> None:
    """A garbage-collected owner's values are masked for the grace period, then dropped."""
    clock = FakeClock()
    r = Redactor(clock=clock)
    owner = Owner()
    r.set_secrets(owner, [TOKEN])
    del owner
    gc.collect()
    assert r.mask(TOKEN) == REDACTED
    clock.now += 601
    assert r.mask(TOKEN) == TOKEN


def test_owner_without_weakref_keeps_values_until_forget() -> None:
    """An owner that cannot be weakly referenced is supported; forget drops its values."""
    r = Redactor(grace_seconds=0)
    owner = object()
    r.set_secrets(owner, [TOKEN])
    assert r.mask(TOKEN) == REDACTED
    r.forget(owner)
    assert r.mask(TOKEN) == TOKEN


def test_unregistered_bearer_credential_is_masked() -> None:
    """A credential after ``Bearer``/``Basic``/``Token`` is masked even if never registered."""
    r = Redactor()
    text = "Authorization: Bearer eyJhbGciOi.J9x, basic dXNlcjpwYXNz, TOKEN abc123."
    expected = f"Authorization: Bearer {REDACTED}, basic {REDACTED}, TOKEN {REDACTED}."
    assert r.mask(text) == expected


def test_scheme_word_in_prose_is_left_alone() -> None:
    """``Bearer token`` or ``token expired.`` in prose is not garbled."""
    text = "missing Bearer token; the token expired. Basic auth is off"
    assert Redactor().mask(text) == text


def test_userinfo_in_text_is_masked() -> None:
    """A URL's userinfo inside free text becomes ``REDACTED:REDACTED``."""
    text = "GET https://bob:pw@host.example/x failed"
    assert Redactor().mask(text) == f"GET https://{REDACTED}:{REDACTED}@host.example/x failed"


def test_sensitive_query_value_in_text_is_masked() -> None:
    """A sensitive query key's value inside free text becomes REDACTED; others are kept."""
    text = "url=/x?page=2&access_token=abc&sig=zz 200"
    assert Redactor().mask(text) == f"url=/x?page=2&access_token={REDACTED}&sig={REDACTED} 200"


@pytest.mark.parametrize(
    "key",
    [
        "AWSAccessKeyId",
        "Signature",
        "sig",
        "X-Goog-Signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "api_key",
        "client_secret",
        "password",
    ],
)
def test_mask_url_redacts_sensitive_query_keys(key: str) -> None:
    """Each sensitive query key's value becomes REDACTED in a URL."""
    url = f"https://h.example/p?a=1&{key}=v4lue&b=2"
    assert Redactor().mask_url(url) == f"https://h.example/p?a=1&{key}={REDACTED}&b=2"


def test_mask_url_redacts_userinfo() -> None:
    """Userinfo, user and password alike, becomes ``REDACTED:REDACTED``."""
    assert Redactor().mask_url("http://user:p%40ss@h:8080/x") == (
        f"http://{REDACTED}:{REDACTED}@h:8080/x"
    )


def test_mask_url_keeps_an_ordinary_url_exactly() -> None:
    """A URL with nothing sensitive comes back unchanged, spelling included."""
    url = "https://h.example/a%2Fb?page=2&q=x+y#frag"
    assert Redactor().mask_url(url) == url


def test_mask_url_without_query_still_masks_values(redactor: Redactor) -> None:
    """The fast path for a plain URL still masks a secret in the path."""
    assert redactor.mask_url(f"https://h.example/{TOKEN}/x") == f"https://h.example/{REDACTED}/x"


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "COOKIE",
        "Set-Cookie",
        "x-api-key",
        "API_KEY",
        "refresh_token",
        "db_password",
        "passwd",
        "client-secret",
        "X-Amz-Signature",
        "http.request.header.authorization",
        "X-Goog-Api-Key",
        "X-RapidAPI-Key",
        "x_apikey",
        "X-Access-Key",
        "X-Auth-Key",
        "private_key",
        "X-Client-Credentials",
    ],
)
def test_sensitive_names(name: str) -> None:
    """Listed names and names holding a sensitive word are sensitive, in any case."""
    assert Redactor().is_sensitive_name(name)


@pytest.mark.parametrize(
    "name",
    ["url.full", "http.request.method", "event", "headers", "Accept", "author", "X-Auth-User"],
)
def test_ordinary_names_are_not_sensitive(name: str) -> None:
    """Ordinary names are not sensitive."""
    assert not Redactor().is_sensitive_name(name)


def test_own_names_are_never_sensitive() -> None:
    """Names under ``observable_session.`` are never sensitive, whatever they contain."""
    assert not Redactor().is_sensitive_name("observable_session.token_bucket")


def test_sensitive_names_are_extendable() -> None:
    """add_sensitive_names makes a name sensitive, in headers and in URLs."""
    r = Redactor()
    r.add_sensitive_names("X-Tenant-Key")
    assert r.is_sensitive_name("x_tenant_key")
    assert r.mask_url("/x?X-Tenant-Key=abcd") == f"/x?X-Tenant-Key={REDACTED}"


def test_scrub_redacts_sensitive_keys_recursively() -> None:
    """A sensitive key's value is REDACTED at any depth."""
    data = {"a": [{"headers": {"Authorization": "x", "Accept": "y"}}]}
    assert Redactor().scrub(data) == {
        "a": [{"headers": {"Authorization": REDACTED, "Accept": "y"}}]
    }


def test_scrub_masks_values_in_lists_and_tuples(redactor: Redactor) -> None:
    """Strings inside lists and tuples are masked; the container types are kept."""
    assert redactor.scrub([TOKEN, (TOKEN, 1)]) == [REDACTED, (REDACTED, 1)]


def test_scrub_handles_case_insensitive_dict(redactor: Redactor) -> None:
    """requests' CaseInsensitiveDict is scrubbed into a plain dict."""
    headers = CaseInsensitiveDict({"authorization": "z", "X-Trace": TOKEN})
    assert redactor.scrub(headers) == {"authorization": REDACTED, "X-Trace": REDACTED}


def test_scrub_does_not_mutate_its_input(redactor: Redactor) -> None:
    """The scrubbed structure is a copy."""
    data = {"headers": {"Authorization": TOKEN}}
    redactor.scrub(data)
    assert data == {"headers": {"Authorization": TOKEN}}


def test_scrub_turns_exceptions_into_masked_strings(redactor: Redactor) -> None:
    """An exception value becomes ``"<Type>: <masked message>"``."""
    assert redactor.scrub(ValueError(TOKEN)) == f"ValueError: {REDACTED}"


def test_scrub_masks_an_objects_repr_only_when_needed(redactor: Redactor) -> None:
    """Other objects are kept, unless their repr holds a secret."""

    class Holder:
        def __repr__(self) -> str:
            return f"Holder({TOKEN})"

    plain = object()
    assert redactor.scrub(plain) is plain
    assert redactor.scrub(Holder()) == f"Holder({REDACTED})"


def test_scrub_keeps_numbers_and_none(redactor: Redactor) -> None:
    """Numbers, booleans and None pass through."""
    assert redactor.scrub([1, 2.5, True, None]) == [1, 2.5, True, None]


def _raise_chain() -> BaseException:
    try:
        try:
            raise KeyError(TOKEN)
        except KeyError as inner:
            raise RuntimeError(f"wrapped Bearer {TOKEN}") from inner
    except RuntimeError as outer:
        return outer


def test_sanitize_exception_message_names_the_original_type(redactor: Redactor) -> None:
    """The copy's str is ``"<fully.qualified.Type>: <masked message>"``."""
    copy = redactor.sanitize_exception(_raise_chain())
    assert str(copy) == f"RuntimeError: wrapped {REDACTED}"


def test_sanitize_exception_leaves_the_original_alone(redactor: Redactor) -> None:
    """The original exception and its cause keep their messages."""
    original = _raise_chain()
    redactor.sanitize_exception(original)
    assert TOKEN in str(original) and TOKEN in str(original.__cause__)


def test_sanitize_exception_masks_the_cause(redactor: Redactor) -> None:
    """``__cause__`` is a masked copy too."""
    copy = redactor.sanitize_exception(_raise_chain())
    assert isinstance(copy.__cause__, MaskedException)
    assert str(copy.__cause__) == f"KeyError: '{REDACTED}'"


def test_sanitize_exception_keeps_context_and_suppression(redactor: Redactor) -> None:
    """``__context__`` is masked and ``__suppress_context__`` copied."""
    try:
        try:
            raise ValueError(TOKEN)
        except ValueError:
            raise OSError("second") from None
    except OSError as exc:
        copy = redactor.sanitize_exception(exc)
    assert copy.__suppress_context__ is True
    assert str(copy.__context__) == f"ValueError: {REDACTED}"


def test_formatted_traceback_of_the_copy_is_clean(redactor: Redactor) -> None:
    """``traceback.format_exception`` of the copy holds no secret but keeps the frames."""
    text = "".join(traceback.format_exception(redactor.sanitize_exception(_raise_chain())))
    assert TOKEN not in text and "_raise_chain" in text


def test_repr_of_the_copy_is_clean(redactor: Redactor) -> None:
    """A UnicodeEncodeError's repr shows its whole input; the copy's does not."""
    try:
        f"Bearer {TOKEN}☃".encode("latin-1")
    except UnicodeEncodeError as exc:
        assert TOKEN in repr(exc)
        assert TOKEN not in repr(redactor.sanitize_exception(exc))


def test_sanitize_exception_survives_a_cycle(redactor: Redactor) -> None:
    """A chain that loops back on itself is copied once per exception."""
    a, b = ValueError(TOKEN), ValueError("b")
    a.__context__, b.__context__ = b, a
    copy = redactor.sanitize_exception(a)
    assert copy.__context__ is not None and copy.__context__.__context__ is copy


def test_sanitize_exception_masks_notes(redactor: Redactor) -> None:
    """Notes added to an exception are masked."""
    exc = ValueError("x")
    exc.add_note(f"token was {TOKEN}")
    assert redactor.sanitize_exception(exc).__notes__ == [f"token was {REDACTED}"]  # type: ignore[attr-defined]


def test_sanitize_exc_info_accepts_tuples(redactor: Redactor) -> None:
    """A ``(type, value, traceback)`` tuple becomes the masked copy."""
    exc = ValueError(TOKEN)
    assert str(redactor.sanitize_exc_info((ValueError, exc, None))) == f"ValueError: {REDACTED}"


def test_module_functions_use_the_default_redactor() -> None:
    """``mask`` and ``mask_url`` delegate to DEFAULT_REDACTOR."""
    owner = Owner()
    DEFAULT_REDACTOR.set_secrets(owner, ["module-level-S3cret"])
    try:
        assert redaction.mask("a module-level-S3cret") == f"a {REDACTED}"
        assert redaction.mask_url("/x/module-level-S3cret") == f"/x/{REDACTED}"
    finally:
        DEFAULT_REDACTOR.forget(owner)


def test_many_secrets_are_all_masked() -> None:
    """With a hundred registered secrets, each one is masked."""
    r = Redactor()
    owners = [Owner() for _ in range(100)]
    for i, owner in enumerate(owners):
        r.set_secrets(owner, [f"Bearer tok-{i:03d}-Qx"])
    text = " ".join(f"tok-{i:03d}-Qx" for i in range(100))
    assert r.mask(text) == " ".join([REDACTED] * 100)


def test_concurrent_registration_and_masking() -> None:
    """Threads registering and masking at once never fail and end consistent."""
    r = Redactor()
    owners = [Owner() for _ in range(8)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(30):
                r.set_secrets(owners[i], [f"Bearer thread-{i}-{n}-Qz"])
                if r.mask(f"thread-{i}-{n}-Qz") != REDACTED:
                    raise AssertionError(i, n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- structlog processors ---------------------------------------------------------------


def test_redact_event_scrubs_by_key_and_value() -> None:
    """The processor redacts sensitive keys and masks values, nested ones included."""
    owner = Owner()
    DEFAULT_REDACTOR.set_secrets(owner, [f"Bearer {TOKEN}"])
    try:
        event = {"event": f"saw {TOKEN}", "password": "x", "h": {"Cookie": "c", "v": [TOKEN]}}
        assert redact_event(None, "info", event) == {
            "event": f"saw {REDACTED}",
            "password": REDACTED,
            "h": {"Cookie": REDACTED, "v": [REDACTED]},
        }
    finally:
        DEFAULT_REDACTOR.forget(owner)


def test_redact_event_sanitizes_exc_info(redactor: Redactor) -> None:
    """``exc_info=True`` inside an except block becomes a masked copy of the exception."""
    try:
        raise ValueError(TOKEN)
    except ValueError:
        event = EventRedactor(redactor)(None, "error", {"event": "x", "exc_info": True})
    assert isinstance(event["exc_info"], MaskedException)
    assert str(event["exc_info"]) == f"ValueError: {REDACTED}"


def test_redact_event_masks_rendered_tracebacks(redactor: Redactor) -> None:
    """An ``exception`` already rendered to text is masked as text."""
    rendered = "".join(traceback.format_exception(_raise_chain()))
    event = EventRedactor(redactor)(None, "error", {"event": "x", "exception": rendered})
    assert TOKEN not in event["exception"]


def test_redact_event_masks_dict_tracebacks_with_locals(redactor: Redactor) -> None:
    """Dict tracebacks with locals (structlog's default) are scrubbed after the fact."""
    transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=True)
    exc = _raise_chain()
    rendered = transformer((type(exc), exc, exc.__traceback__))
    event = EventRedactor(redactor)(None, "error", {"event": "x", "exception": rendered})
    assert TOKEN not in json.dumps(event["exception"], default=str)


def test_redact_event_keeps_processor_formatter_metadata() -> None:
    """ProcessorFormatter's ``_record`` and ``_from_structlog`` are passed through."""
    record = object()
    event = redact_event(None, "info", {"event": "x", "_record": record, "_from_structlog": True})
    assert event["_record"] is record


def test_redact_event_in_a_structlog_chain(redactor: Redactor) -> None:
    """Placed in a chain, the processor masks what capture_logs sees."""
    capture = structlog.testing.LogCapture()  # capture_logs(processors=) needs structlog 25.5
    chain = structlog.wrap_logger(None, processors=[EventRedactor(redactor), capture])
    chain.info("call", url=f"https://h/?q={TOKEN}", Authorization="k")
    assert capture.entries == [
        {
            "event": "call",
            "url": f"https://h/?q={REDACTED}",
            "Authorization": REDACTED,
            "log_level": "info",
        }
    ]


# -- spans --------------------------------------------------------------------------------


def _export_one(redactor: Redactor) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(memory, redactor)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(f"GET /{TOKEN}") as other:
        pass
    link = Link(other.get_span_context(), {"why": TOKEN})
    with tracer.start_as_current_span("GET", links=[link]) as span:
        span.set_attribute("url.full", f"https://u:p@h/x?api_key=k&q={TOKEN}")
        span.set_attribute("http.request.header.authorization", ("Bearer x",))
        span.set_attribute("note", [TOKEN, "ok"])
        span.record_exception(RuntimeError(f"Bearer {TOKEN}"))
        span.set_status(Status(StatusCode.ERROR, f"failed with {TOKEN}"))
    provider.shutdown()
    return memory


def test_span_exporter_masks_attributes(redactor: Redactor) -> None:
    """URL attributes are masked as URLs, sensitive keys redacted, sequences masked."""
    attributes = _export_one(redactor).get_finished_spans()[1].attributes or {}
    assert attributes["url.full"] == (
        f"https://{REDACTED}:{REDACTED}@h/x?api_key={REDACTED}&q={REDACTED}"
    )
    assert attributes["http.request.header.authorization"] == REDACTED
    assert attributes["note"] == (REDACTED, "ok")


def test_span_exporter_masks_exception_events(redactor: Redactor) -> None:
    """``exception.message`` and ``exception.stacktrace`` are masked."""
    event = _export_one(redactor).get_finished_spans()[1].events[0]
    assert TOKEN not in json.dumps(dict(event.attributes or {}))


def test_span_exporter_masks_status_name_and_links(redactor: Redactor) -> None:
    """The status description, the span name and link attributes are masked."""
    first, second = _export_one(redactor).get_finished_spans()
    assert first.name == f"GET /{REDACTED}"
    assert second.status.description == f"failed with {REDACTED}"
    assert dict(second.links[0].attributes or {}) == {"why": REDACTED}


def test_credential_with_trailing_blank_is_registered_as_is() -> None:
    """``Bearer ::: `` registers ``::: `` with its blank, so its URL spelling is masked."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, ["Bearer ::: "])
    assert r.mask("/ok?q=%3A%3A%3A+&page=2") == f"/ok?q={REDACTED}&page=2"


def test_credential_with_leading_blank_is_registered_as_is() -> None:
    """``Bearer  00A`` registers `` 00A`` with its blank, so its URL spelling is masked."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, ["Bearer  00A"])
    assert r.mask("/ok?q=+00A&page=2") == f"/ok?q={REDACTED}&page=2"


def test_reused_id_of_a_collected_owner_keeps_the_new_secrets() -> None:
    """An owner collected while the lock is held cannot take a newcomer's secrets with it."""
    from observable_session._auth import AuthHeaders
    from observable_session.redaction import DEFAULT_REDACTOR

    for _ in range(50):
        first = AuthHeaders({"X-K": "first-secret-1111"})
        with DEFAULT_REDACTOR._lock:
            first_id = id(first)
            del first  # its finalizer runs now and must leave the drop pending
        second = AuthHeaders({"X-K": "second-secret-2222"})
        if id(second) == first_id:
            assert DEFAULT_REDACTOR.mask("second-secret-2222") == "REDACTED"
            return
        del second
    pytest.skip("the allocator never reused the id in 50 trials")


def test_set_grace_shortens_the_pool_at_once() -> None:
    """set_grace applies to values already in the grace pool."""
    r = Redactor(clock=FakeClock())
    owners = [Owner() for _ in range(3)]
    for i, owner in enumerate(owners):
        r.set_secrets(owner, [f"{TOKEN}-grace-{i}"])
        r.forget(owner)
    r.set_grace(600, 1)
    assert [r.mask(f"{TOKEN}-grace-{i}") for i in range(3)] == [
        f"{TOKEN}-grace-0",
        f"{TOKEN}-grace-1",
        REDACTED,
    ]


@pytest.mark.parametrize("word", ["Bearer", "Basic", "Token"])
def test_a_scheme_word_in_any_case_the_pattern_takes_is_detected(word: str) -> None:
    """The shape detector's case-folded prefilter misses no spelling the pattern matches.

    Python's case-insensitive match takes ``\\u017f`` for ``s``, the Kelvin sign for ``k``
    and dotted or dotless I for ``i``; each such spelling is still masked.
    """
    import re

    r = Redactor()
    for i, letter in enumerate(word):
        same = [
            chr(cp)
            for cp in range(0x2200)
            if chr(cp) != letter and re.fullmatch(f"(?i){letter}", chr(cp))
        ]
        for char in same:
            spelled = word[:i] + char + word[i + 1 :]
            text = f"upstream said: {spelled} Zq0123456789abcdefXY (retry)"
            assert r.mask(text) == f"upstream said: {spelled} {REDACTED} (retry)", spelled
