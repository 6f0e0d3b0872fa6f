"""Bounded reads of error bodies: the message and the drain before a retry.

A hostile or broken server may answer a 4xx/5xx with a body of 200 MB, one that drips a byte
at a time, one cut short, or one whose gzip is broken. With ``stream=True`` the body is still
on the socket when the session needs it, and reading it whole (``response.content``) would
hold that much memory and that much time. Here every read is bounded three ways:

- **bytes**: at most ``limit`` bytes (the session's ``error_body_limit``, 64 KiB by default);
- **time**: reads use ``read1`` (one socket read each) under a socket timeout cut to what is
  left of a small budget, so a dripping or stalled body costs at most the budget;
- **failures**: a body cut short, a bad chunk, broken gzip or a timeout ends the read with
  the bytes read so far; nothing escapes as a bare ``requests``/``urllib3`` exception.

A body that was already read (``stream=False``, as requests does) is used as it is.

Draining before a retry reads the rest of the body (at most ``limit`` raw bytes, within
the budget) so the connection can go back to the pool; when the end is not reached, the
response is closed and so is its connection, instead of being reused.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from requests import Response

from .redaction._decode import open_escape_tail

MESSAGE_BUDGET_S = 1.0
"""Seconds reading an error body for its message may take, at most."""

DRAIN_BUDGET_S = 0.1
"""Seconds draining a retried response may take before its connection is closed instead."""

_CHUNK = 8192


def _socket_of(response: Response) -> Any:
    """The socket the response's body comes from, when urllib3 still holds it."""
    connection = getattr(response.raw, "_connection", None)
    return getattr(connection, "sock", None)


def _bounded_chunks(
    response: Response, limit: int, budget: float, *, decode: bool
) -> tuple[list[bytes], bool]:
    """Read up to ``limit`` bytes of the body within ``budget`` seconds, stopping on failure.

    Returns the chunks read and whether a read failed (cut short, bad chunk, bad gzip, timeout).
    """
    raw = response.raw
    sock = _socket_of(response)
    ends = time.monotonic() + budget
    chunks: list[bytes] = []
    got = 0
    failed = False
    try:
        while got < limit:
            left = ends - time.monotonic()
            if left <= 0:
                break
            if sock is not None:
                # urllib3 sets the socket's timeout again before each request, so this
                # lasts only for this read.
                sock.settimeout(left)
            chunk = raw.read1(min(_CHUNK, limit - got), decode_content=decode)
            chunks.append(chunk)
            if not chunk:
                break
            got += len(chunk)
    except Exception:  # cut short, bad chunk, bad gzip, timeout: stop here
        failed = True
    return chunks, failed


def _budget(default: float, deadline_at: float | None) -> float:
    """``default`` seconds, cut to what is left of the call's deadline."""
    if deadline_at is None:
        return default
    return min(default, deadline_at - time.monotonic())


def _at_end(response: Response, chunks: list[bytes]) -> bool:
    """Whether the body was read to its end: urllib3's ``closed`` (http.client closes its file
    there), or, for a raw stream without it (a custom transport), a last read of ``b""``."""
    try:
        closed = response.raw.closed
    except Exception:  # a raw object of another kind
        return chunks[-1:] == [b""]
    return bool(closed)


def _decode(data: bytes, response: Response) -> str:
    """Text in the response's charset (UTF-8 when it names none or one that cannot decode)."""
    encoding = response.encoding or "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except (LookupError, ValueError):
        # The server names the charset: an unknown one, a codec that is not text (base64),
        # or one that refuses errors="replace" (idna, punycode raise UnicodeError).
        return data.decode("utf-8", errors="replace")


_DELIMITERS = " \t\r\n\"'<>,;&="


def _without_partial_tail(text: str) -> str:
    """``text`` up to its last delimiter: a body cut short (at the limit, or where the server
    chose to stop) may end inside an echoed secret, which the redactor, knowing only whole
    values, would leave half unmasked. An escaped spelling holds delimiters itself
    (``&#90;&#113;``), so a trailing run of escapes goes too."""
    cut = max(text.rfind(c) for c in _DELIMITERS)
    kept = text[: cut + 1] if cut >= 0 else ""
    return open_escape_tail(kept, len(kept))


def error_text(response: Response, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of the body as text, and whether that was the whole body.

    With the body already read, its first ``limit`` bytes. Otherwise (``stream=True``) the
    bounded read: when it reached the end, the body is kept on the response (so
    ``exc.response.content`` still works); when not, the response is closed.
    """
    if limit <= 0:
        return "", False
    if getattr(response, "_content_consumed", False) or response._content is not False:  # type: ignore[comparison-overlap]
        try:
            content = response.content or b""
        except Exception:  # a failed earlier read leaves no body
            return "", False
        if len(content) <= limit:
            return _decode(content, response), True
        return _without_partial_tail(_decode(content[:limit], response)), False
    if response.raw is None:
        return "", False
    # The call's deadline (set by the session) bounds this read too: the message is part of
    # the call when request() raises instead of returning the response.
    budget = _budget(MESSAGE_BUDGET_S, getattr(response, "_observable_deadline_at", None))
    chunks, failed = _bounded_chunks(response, limit, budget, decode=True)
    data = b"".join(chunks)
    # Complete only when http.client closed its file at the end of the body (after the length
    # it announced, the last chunk, or EOF): then urllib3 has put the connection back.
    complete = not failed and _at_end(response, chunks)
    if complete:
        response._content = data
        response._content_consumed = True
    else:
        close_quietly(response)
    text = _decode(data, response)
    return (text, True) if complete else (_without_partial_tail(text), False)


def drain(response: Response, limit: int, deadline_at: float | None = None) -> None:
    """Before a retry: read the rest (bounded) so the connection is reused, else close it."""
    if getattr(response, "_content_consumed", False) or response.raw is None:
        close_quietly(response)
        return
    budget = _budget(DRAIN_BUDGET_S, deadline_at)
    chunks, failed = _bounded_chunks(response, limit + 1, budget, decode=False)
    if failed or not _at_end(response, chunks):
        # The end was not reached: closing the raw response closes its connection too,
        # so a half-read socket is never handed to the next request.
        with contextlib.suppress(Exception):
            response.raw.close()
    close_quietly(response)


def release_redirect(response: Response, limit: int, deadline_at: float | None = None) -> None:
    """A redirect about to be followed (``stream=True``): keep at most ``limit`` bytes of it.

    requests' ``resolve_redirects`` reads a redirect's body whole (``resp.content``) to free
    its connection: a 302 with a 200 MB body held 400 MB. Here the body is read as the drain
    before a retry is (bounded in bytes and within ``DRAIN_BUDGET_S``, cut to the deadline);
    when its end is reached it stays on the response (``r.history[0].content``), otherwise
    the response keeps an empty body and its connection is closed instead of reused.
    """
    if getattr(response, "_content_consumed", False) or response._content is not False:  # type: ignore[comparison-overlap]
        return  # read already (stream=False): as requests does
    complete = False
    data = b""
    if response.raw is not None:
        budget = _budget(DRAIN_BUDGET_S, deadline_at)
        chunks, failed = _bounded_chunks(response, limit + 1, budget, decode=True)
        complete = not failed and _at_end(response, chunks)
        data = b"".join(chunks) if complete else b""
        if not complete:
            with contextlib.suppress(Exception):
                response.raw.close()  # closes the half-read connection too
    response._content = data
    response._content_consumed = True


def close_quietly(response: Response) -> None:
    """``response.close()``; a failure while closing a broken connection is not ours to raise."""
    with contextlib.suppress(Exception):
        response.close()
