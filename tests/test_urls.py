"""base_url joining, route templates and origin checks."""

from __future__ import annotations

import pytest

from observable_session import InvalidConfigError, InvalidURLError
from observable_session._urls import (
    fill_template,
    join_url,
    origin_of,
    template_path,
    validate_base_url,
)

BASE = "https://api.example.com/v2"


@pytest.mark.parametrize("url", ["x", "/x", "//x"])
def test_relative_forms_join_to_base(url: str) -> None:
    """x, /x and //x all give <base>/x."""
    assert join_url(BASE, url) == "https://api.example.com/v2/x"


def test_query_and_fragment_are_kept() -> None:
    """The query and fragment of a relative URL survive the join."""
    assert join_url(BASE, "jobs?a=1#f") == "https://api.example.com/v2/jobs?a=1#f"


def test_trailing_slash_on_base_is_not_doubled() -> None:
    """A base URL ending in / joins without //."""
    assert join_url(BASE + "/", "/jobs") == "https://api.example.com/v2/jobs"


def test_absolute_url_passes_through() -> None:
    """An absolute http(s) URL is not joined."""
    assert join_url(BASE, "HTTPS://other.example/x") == "HTTPS://other.example/x"


@pytest.mark.parametrize("url", ["\thttps://evil.example/", " x", "\nx"])
def test_leading_white_space_is_refused(url: str) -> None:
    """A leading tab or space is refused, not stripped into another host."""
    with pytest.raises(InvalidURLError):
        join_url(BASE, url)


@pytest.mark.parametrize("url", ["jo\x00bs", "a\r\nHost: evil", "x\x7f"])
def test_control_characters_are_refused(url: str) -> None:
    """A control character anywhere is refused."""
    with pytest.raises(InvalidURLError):
        join_url(BASE, url)


@pytest.mark.parametrize("url", ["../x", "a/../../x", "%2e%2e/x", "..\\x", "a/./../.."])
def test_climbing_above_base_is_refused(url: str) -> None:
    """A relative path that climbs above the base path is refused."""
    with pytest.raises(InvalidURLError):
        join_url(BASE, url)


def test_dotdot_that_stays_inside_is_allowed() -> None:
    """a/../b stays below the base path and is allowed."""
    assert join_url(BASE, "a/../b") == "https://api.example.com/v2/a/../b"


def test_invalid_url_error_is_a_value_error() -> None:
    """Refusals are ValueError-derived."""
    with pytest.raises(ValueError):
        join_url(BASE, "../x")


@pytest.mark.parametrize(
    "base", ["ftp://x.example", "api.example.com", "/v2", "", "https://", "https://h/?q=1", 42]
)
def test_bad_base_url_is_refused(base: object) -> None:
    """base_url must be an absolute http(s) URL."""
    with pytest.raises(InvalidConfigError):
        validate_base_url(base)


def test_template_values_are_percent_encoded() -> None:
    """A path parameter cannot add a path segment."""
    assert fill_template("/jobs/{job_id}", {"job_id": "a/../b c"}) == "/jobs/a%2F..%2Fb%20c"


@pytest.mark.parametrize("value", ["..", ".", ""])
def test_template_refuses_dot_segments(value: str) -> None:
    """A parameter of '.' or '..' is refused."""
    with pytest.raises(InvalidURLError):
        fill_template("/jobs/{job_id}", {"job_id": value})


def test_template_missing_parameter_is_named() -> None:
    """A missing parameter is refused, naming it."""
    with pytest.raises(InvalidURLError, match="job_id"):
        fill_template("/jobs/{job_id}", {})


def test_template_path_includes_base_path() -> None:
    """url.template is the full path template, without the query."""
    assert template_path(BASE, "jobs/{id}?x=1") == "/v2/jobs/{id}"


def test_origin_uses_default_ports() -> None:
    """Origins compare scheme, host and port, with default ports filled in."""
    assert origin_of("https://API.example.com/x") == ("https", "api.example.com", 443)
    assert origin_of("http://h:8080") == ("http", "h", 8080)
    assert origin_of("mailto:x@y") is None
