"""The error tree: a counterpart for every requests exception, request/response/args, pickling."""

from __future__ import annotations

import inspect
import io
import json
import logging
import pickle
import traceback
from typing import Any

import pytest
import requests
import structlog

import observable_session
from observable_session import (
    ApiChunkedEncodingError,
    ApiConnectionError,
    ApiHTTPError,
    ApiInvalidHeader,
    ApiInvalidJSONError,
    ApiInvalidProxyURL,
    ApiInvalidSchema,
    ApiMissingSchema,
    ApiReadTimeout,
    ApiTooManyRedirects,
    AttemptRecord,
    InvalidURLError,
    RedactingFilter,
    RequestsApiError,
    Session,
    configure_logging,
    counterpart,
)
from observable_session import errors as errors_module
from tests.conftest import Echo, Reply, Truncate, Upstream

KEY = "sk-errors-0123456789abcdef"


def requests_exception_classes() -> list[type[requests.RequestException]]:
    """Every exception class requests.exceptions defines (walked, not listed)."""
    return [
        obj
        for obj in vars(requests.exceptions).values()
        if inspect.isclass(obj)
        and issubclass(obj, requests.RequestException)
        and obj.__module__ == requests.exceptions.__name__
    ]


def make(upstream: Upstream, **kwargs: Any) -> Session:
    """A session on the upstream with an API key, no sleeping."""
    kwargs.setdefault("auth_headers", {"X-API-Key": KEY})
    return Session(base_url=upstream.url, sleep=lambda s: None, **kwargs)


def test_walk_finds_the_classes_requests_defines() -> None:
    """The walk is not vacuous: it sees the exceptions the issue names, and more."""
    found = set(requests_exception_classes())
    assert len(found) >= 20
    assert {requests.exceptions.InvalidHeader, requests.exceptions.RetryError} <= found


@pytest.mark.parametrize("cls", requests_exception_classes(), ids=lambda c: c.__name__)
def test_every_requests_exception_has_an_exported_counterpart(cls: type[Exception]) -> None:
    """Its counterpart is a RequestsApiError and that requests class, importable by name."""
    ours = counterpart(cls)
    assert issubclass(ours, RequestsApiError) and issubclass(ours, cls)
    assert ours.requests_type is cls
    assert getattr(observable_session, ours.__name__) is ours
    assert ours.__name__ in errors_module.__all__ and ours.__doc__


@pytest.mark.parametrize("cls", requests_exception_classes(), ids=lambda c: c.__name__)
def test_every_counterpart_can_be_built_and_keeps_requests_bases(cls: type[Exception]) -> None:
    """Each counterpart is constructible with a message and is every requests base too."""
    exc = counterpart(cls)("masked message", attempts=2)
    assert str(exc) == "masked message" and exc.attempts == 2
    for base in cls.__mro__:
        assert isinstance(exc, base)


def test_third_party_subclass_maps_to_most_specific_counterpart() -> None:
    """A subclass of a requests exception that requests does not know maps by MRO."""

    class VendorTimeout(requests.ConnectTimeout):
        pass

    class VendorError(requests.RequestException):
        pass

    assert counterpart(VendorTimeout) is observable_session.ApiConnectTimeout
    assert counterpart(VendorError) is RequestsApiError
    assert counterpart(KeyError) is RequestsApiError
    assert counterpart(ApiReadTimeout) is ApiReadTimeout


def test_missing_invalid_schema_and_proxy_url_are_distinct_types() -> None:
    """The three URL errors requests tells apart are three classes, still InvalidURLError."""
    kinds = {ApiMissingSchema, ApiInvalidSchema, ApiInvalidProxyURL}
    assert len(kinds) == 3 and all(issubclass(k, InvalidURLError) for k in kinds)
    assert not issubclass(ApiMissingSchema, requests.exceptions.InvalidSchema)


def test_missing_schema_raises_missing_schema() -> None:
    """A URL without a scheme is a MissingSchema, as in requests."""
    with Session() as s, pytest.raises(requests.exceptions.MissingSchema) as info:
        s.get("hiwpefhipowhefopw")
    assert isinstance(info.value, ApiMissingSchema)


def test_unknown_scheme_raises_invalid_schema() -> None:
    """A scheme with no adapter is an InvalidSchema."""
    with Session() as s, pytest.raises(ApiInvalidSchema):
        s.get("localhost:3128")


def test_bad_proxy_url_raises_invalid_proxy_url(upstream: Upstream) -> None:
    """A malformed proxy URL is an InvalidProxyURL, and nothing is sent."""
    with make(upstream) as s, pytest.raises(requests.exceptions.InvalidProxyURL) as info:
        s.get("/x", proxies={"http": "http://:8080"})
    assert isinstance(info.value, ApiInvalidProxyURL) and upstream.hits() == 0


@pytest.mark.parametrize("headers", [{"foo": " bar"}, {"foo": "bar\r\nbaz: qux"}, {"foo": 1}])
def test_bad_header_is_invalid_header_and_value_error(
    upstream: Upstream, headers: dict[str, Any]
) -> None:
    """Leading space, CR/LF or a non-str value: InvalidHeader (a ValueError), not sent."""
    with make(upstream) as s, pytest.raises(requests.exceptions.InvalidHeader) as info:
        s.get("/x", headers=headers)
    assert isinstance(info.value, ApiInvalidHeader) and isinstance(info.value, ValueError)
    assert upstream.hits() == 0


def test_json_nan_is_invalid_json_error(upstream: Upstream) -> None:
    """json= with NaN is an InvalidJSONError, as requests raises."""
    with make(upstream) as s, pytest.raises(requests.exceptions.InvalidJSONError) as info:
        s.post("/x", json={"v": float("nan")})
    assert isinstance(info.value, ApiInvalidJSONError)


def test_truncated_body_is_chunked_encoding_error(upstream: Upstream) -> None:
    """A body shorter than its Content-Length: ChunkedEncodingError, and ApiConnectionError."""
    upstream.script("/t", Truncate())
    with make(upstream, retries_total=0) as s:
        with pytest.raises(requests.exceptions.ChunkedEncodingError) as info:
            s.get("/t")
    assert isinstance(info.value, ApiChunkedEncodingError)
    assert isinstance(info.value, ApiConnectionError)


def test_too_many_redirects_carries_the_last_response(upstream: Upstream) -> None:
    """TooManyRedirects has the last redirect response and its request, as requests sets."""
    upstream.script("/loop", Reply(302, headers={"Location": "/loop"}))
    with make(upstream) as s:
        s.max_redirects = 3
        with pytest.raises(ApiTooManyRedirects) as info:
            s.get("/loop")
    error = info.value
    assert error.response is not None and error.response.status_code == 302
    assert len(error.response.history) == 3
    assert error.request is not None and error.request.url == error.response.request.url
    assert error.request.headers["X-API-Key"] == "REDACTED"


def test_http_error_carries_request_and_response(upstream: Upstream) -> None:
    """ApiHTTPError.request is the PreparedRequest that got the 4xx/5xx."""
    upstream.script("/e", Reply(404, {"message": "no such job"}))
    with make(upstream) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    assert info.value.response is not None and info.value.request is not None
    assert info.value.request.url == info.value.response.request.url == f"{upstream.url}/e"
    assert info.value.request.method == "GET"


def test_read_timeout_args_are_requests_args_masked(upstream: Upstream) -> None:
    """args[0] stands for the urllib3 error (as in requests), str() is our masked message."""
    upstream.script("/slow", Reply(delay=1.0))
    with make(upstream, retries_total=0, timeout=0.2) as s, pytest.raises(ApiReadTimeout) as info:
        s.get(f"/slow?token={KEY}")
    error = info.value
    assert "Read timed out" in error.args[0].args[0]
    assert str(error).startswith("GET failed")
    assert KEY not in repr(error.args) and KEY not in str(error)
    assert error.request is not None  # requests sets it when the headers time out


def test_connection_error_args_hold_no_secret(refused_url: str) -> None:
    """A connection error's args (a masked copy of urllib3's) keep the URL's secret out."""
    url = refused_url.replace("http://", f"http://user:{KEY}@") + f"/x?token={KEY}"
    with Session(auth_headers={"X-API-Key": KEY}, sleep=lambda s: None) as s:
        with pytest.raises(ApiConnectionError) as info:
            s.get(url)
    text = repr(info.value.args) + "".join(traceback.format_exception(info.value))
    assert KEY not in text


def test_logging_the_request_masks_its_credentials_structlog(upstream: Upstream) -> None:
    """structlog (the production chain) masks the auth header held by error.request."""
    upstream.script("/e", Reply(500))
    out = io.StringIO()
    configure_logging(stream=out, json=True)
    try:
        with make(upstream, retries_total=0) as s, pytest.raises(ApiHTTPError) as info:
            s.get("/e")
        error = info.value  # the session is closed: its values left the redactor's index
        assert error.request is not None
        structlog.get_logger("app").error(
            "job failed",
            headers=dict(error.request.headers),
            sent=str(error.request.headers),
            request=error.request,
            error=error,
            exc_info=error,
        )
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    text = out.getvalue()
    assert "job failed" in text and KEY not in text


def test_logging_the_request_masks_its_credentials_stdlib(upstream: Upstream) -> None:
    """A stdlib logger with the RedactingFilter masks error.request's headers."""
    upstream.script("/e", Reply(500))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.errors.stdlib")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with make(upstream, retries_total=0) as s, pytest.raises(ApiHTTPError) as info:
            s.get("/e")
        error = info.value  # logged after close, as a top-level handler would
        assert error.request is not None
        logger.error("failed %s %r", error.request.headers, error, exc_info=error)
    finally:
        logger.removeHandler(handler)
    assert "failed" in out.getvalue() and KEY not in out.getvalue()


def test_echoing_server_leaks_nothing_through_args(upstream: Upstream) -> None:
    """A server that echoes the auth header: args, str, repr and pickle hold no secret."""
    upstream.script("/e", Echo(401))
    with make(upstream) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    error = info.value
    text = repr(error.args) + str(error) + repr(error) + repr(pickle.dumps(error))
    assert KEY not in text and "REDACTED" in text


def test_error_request_masks_every_credential_header(upstream: Upstream, refused_url: str) -> None:
    """An error's request holds REDACTED for auth headers, even oddly named ones, and cookies."""
    auth = {"X-Whatever": "odd-named-secret-1234"}
    with Session(auth_headers=auth, retries_total=0, retries_connect=0) as s:
        with pytest.raises(ApiConnectionError) as info:
            s.get(f"{refused_url}/x?token={KEY}", headers={"Cookie": "sid=abcdef123456"})
    request = info.value.request
    assert request is not None
    assert request.headers["X-Whatever"] == "REDACTED" and request.headers["Cookie"] == "REDACTED"
    assert KEY not in (request.url or "") and "odd-named-secret-1234" not in repr(
        dict(request.headers)
    )


def test_errors_pickle_intact(upstream: Upstream) -> None:
    """Type, message, args, error_type, status_code, attempts, history survive pickling."""
    upstream.script("/e", Reply(503), Reply(503), Reply(503))
    with make(upstream) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    error = info.value
    error.retry_denied = "budget"  # type: ignore[attr-defined]
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ApiHTTPError
    assert str(copy) == str(error) and copy.args == error.args
    assert (copy.error_type, copy.status_code, copy.attempts) == ("503", 503, 3)
    assert copy.history == error.history and len(copy.history) == 3
    assert copy.retry_denied == "budget"  # type: ignore[attr-defined]
    assert copy.request is None and copy.response is None


@pytest.mark.parametrize("cls", requests_exception_classes(), ids=lambda c: c.__name__)
def test_every_counterpart_pickles(cls: type[Exception]) -> None:
    """Every class of the tree survives a pickle round trip, with a masked-copy arg."""
    ours = counterpart(cls)
    error = ours(
        "masked",
        attempts=2,
        history=(AttemptRecord(None, "x", 0.1),),
        args=(observable_session.redaction.MaskedException("urllib3.X", "boom"),),
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ours and str(copy) == "masked" and copy.attempts == 2
    assert copy.history == error.history and copy.args == ("urllib3.X: boom",)


def test_json_decode_counterpart_is_a_json_error() -> None:
    """ApiJSONDecodeError is a json.JSONDecodeError too, with its attributes."""
    error = observable_session.ApiJSONDecodeError("Expecting value")
    assert isinstance(error, json.JSONDecodeError) and error.msg == "Expecting value"


def public_error_classes() -> list[type[RequestsApiError]]:
    """Every exception class the package exports."""
    return [
        obj
        for name in observable_session.__all__
        if isinstance(obj := getattr(observable_session, name), type)
        and issubclass(obj, RequestsApiError)
    ]


@pytest.mark.parametrize("cls", public_error_classes(), ids=lambda c: c.__name__)
def test_every_public_error_pickles_its_attributes(cls: type[RequestsApiError]) -> None:
    """Wait, circuit and deadline errors too: attempts, history, retry fields survive."""
    error = cls("masked")
    error.attempts = 3
    error.history = (AttemptRecord(503, "503", 0.1, 0.5),)
    error.error_type = "503"
    error.status_code = 503
    error.retry_denied = "budget"
    error.retry_after = 2.5
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == "masked"
    for name in ("attempts", "history", "error_type", "status_code", "retry_denied", "retry_after"):
        assert getattr(copy, name) == getattr(error, name), name
