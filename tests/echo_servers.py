"""Loopback servers that echo the credentials they receive, in the spellings attackers see.

``EchoServer`` answers ``/echo`` with the value of one request header (or a part of it:
the credential after the scheme, Basic's decoded ``user:pass`` or its password) in one of
the spellings of :func:`encode` (JSON escapes, HTML entities, percent-encoding, base64),
placed in a JSON ``message``, a raw JSON body without ``message``, an HTML page, a text
body, a response header, or a redirect's ``Location``. It also speaks as an HTTP proxy
(absolute-form request lines), runs a Digest challenge, and sets cookies.

The encoders are shared with the tests, which compute the same spelling from the same seed;
:func:`views` undoes every spelling on a sink's text, so a leak is found whatever the form.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import random
import re
import threading
from dataclasses import dataclass
from html.entities import codepoint2name
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

FORMS = ("plain", "json", "html", "percent", "b64", "b64url", "html-zeros")
PLACES = ("json", "jsonraw", "html", "text", "header", "location")
PARTS = ("whole", "cred", "basic", "password")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# -- the spellings -------------------------------------------------------------------------


def _hex_case(digits: str, rng: random.Random) -> str:
    """``digits`` in lower, upper, or a per-digit mix of case (one choice per escape)."""
    mode = rng.randrange(3)
    if mode == 0:
        return digits.lower()
    if mode == 1:
        return digits.upper()
    return "".join(d.upper() if rng.random() < 0.5 else d.lower() for d in digits)


def _json(value: str, rng: random.Random, p: float, ascii_only: bool) -> str:
    out = []
    for ch in value:
        code = ord(ch)
        must = ch in '"\\' or code < 0x20 or (ascii_only and code > 0x7E)
        if not must and rng.random() >= p:
            out.append(ch)
        elif ch == "/" and rng.random() < 0.5:
            out.append("\\/")
        elif ch in '"\\' and rng.random() < 0.5:
            out.append("\\" + ch)
        else:
            units = [code]
            if code > 0xFFFF:
                code -= 0x10000
                units = [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
            out += ["\\u" + _hex_case(f"{unit:04x}", rng) for unit in units]
    return "".join(out)


def _html(
    value: str, rng: random.Random, p: float, ascii_only: bool, widths: tuple[int, ...]
) -> str:
    out = []
    for ch in value:
        must = ch in "&<>\"'" or (ascii_only and ord(ch) > 0x7E)
        if not must and rng.random() >= p:
            out.append(ch)
            continue
        name = codepoint2name.get(ord(ch))
        choice = rng.randrange(3)
        if choice == 0 and name:
            out.append(f"&{name};")
        elif choice == 1:
            out.append(f"&#{ord(ch):0{rng.choice(widths)}d};")  # leading zeros are allowed
        else:
            digits = _hex_case(f"{ord(ch):0{rng.choice(widths)}x}", rng)
            out.append(f"&#{rng.choice('xX')}{digits};")
    return "".join(out)


def _percent(value: str, rng: random.Random, p: float, plus: bool) -> str:
    out = []
    for byte in value.encode("utf-8"):
        ch = chr(byte)
        if plus and ch == " ":
            out.append("+")
        elif ch in _UNRESERVED and rng.random() >= p:
            out.append(ch)
        else:
            out.append("%" + _hex_case(f"{byte:02x}", rng))
    return "".join(out)


@dataclass(frozen=True)
class Spelling:
    """How the server spells what it echoes: the form and its knobs."""

    form: str = "plain"
    seed: int = 0
    p: float = 0.5  # the chance that a character that may stay as is gets escaped
    padded: bool = True  # base64
    plus: bool = True  # percent-encoding: space as "+"

    def query(self) -> dict[str, str]:
        """The request parameters that select this spelling on the server."""
        return {
            "form": self.form,
            "seed": str(self.seed),
            "p": f"{self.p:.3f}",
            "padded": str(int(self.padded)),
            "plus": str(int(self.plus)),
        }

    @classmethod
    def from_query(cls, query: dict[str, str]) -> Spelling:
        """The spelling that ``query`` (as built by :meth:`query`) selects."""
        return cls(
            query.get("form", "plain"),
            int(query.get("seed", "0")),
            float(query.get("p", "0.5")),
            query.get("padded", "1") == "1",
            query.get("plus", "1") == "1",
        )


def encode(value: str, spelling: Spelling, *, ascii_only: bool = False) -> str:
    """``value`` spelled as ``spelling`` says; ``ascii_only`` escapes every non-ASCII char."""
    rng = random.Random(spelling.seed)
    form = spelling.form
    if form == "json":
        return _json(value, rng, spelling.p, ascii_only)
    if form in ("html", "html-zeros"):  # numeric references may carry any number of zeros
        widths = (1, 4, 8, 12) if form == "html-zeros" else (1, 4)
        return _html(value, rng, spelling.p, ascii_only, widths)
    if form == "percent":
        return _percent(value, rng, spelling.p, spelling.plus)
    if form in ("b64", "b64url"):
        raw = value.encode("utf-8", "surrogatepass")
        text = (base64.b64encode if form == "b64" else base64.urlsafe_b64encode)(raw).decode()
        return text if spelling.padded else text.rstrip("=")
    return value


def part_of(value: str, part: str) -> str:
    """The part of a header value to echo: whole, after the scheme, Basic's pair or password."""
    if part == "whole":
        return value
    _, _, cred = value.strip().partition(" ")
    if part == "cred":
        return cred.strip() or value
    try:
        pair = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return value
    return pair if part == "basic" else pair.partition(":")[2]


def from_wire(value: str) -> str:
    """A header value as the client meant it: http.server reads header bytes as latin-1."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


# -- undoing the spellings on a sink's text ---------------------------------------------------

_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\([\"\\/])")


def _json_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return chr(int(match.group(1), 16))
        return match.group(2)

    joined = _JSON_ESCAPE.sub(one, text)
    return joined.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _json_strings(text: str) -> str:
    """Every string inside the JSON documents of ``text`` (one per line), fully decoded."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, str):
            found.append(obj)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                found.append(str(key))
                walk(value)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)

    for line in text.splitlines():
        line = line.strip()
        if line[:1] in ("{", "["):
            try:
                walk(json.loads(line))
            except ValueError:
                continue
    return "\n".join(found)


def views(text: str) -> list[str]:
    """``text`` and every reading of it with one spelling undone (JSON, HTML, percent)."""
    bases = [text, text.replace("\\\\", "\\")]
    strings = _json_strings(text)
    if strings:
        bases += [strings, strings.replace("\\\\", "\\")]
    out = []
    for base in bases:
        out += [base, _json_unescape(base), html.unescape(base), unquote(base)]
        out.append(unquote_plus(base))
    return out


# -- the server ----------------------------------------------------------------------------


@dataclass
class EchoState:
    """What the tests tell the server out of band (never through a URL)."""

    digest_password: str = ""
    cookie: str = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    server: _EchoHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            # A value outside latin-1 goes out as its UTF-8 bytes, as a careless server does.
            self.send_header(name, value.encode("utf-8").decode("latin-1"))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # also POST: a job submission answered like a GET
        # Absolute-form request lines arrive when the server is used as a proxy.
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path == "/echo":
            self._echo(query)
        elif parts.path == "/login":
            cookie = f"sid={self.server.state.cookie}; Path=/"
            self._send(200, b"{}", "application/json", {"Set-Cookie": cookie})
        else:
            self._send(200, b'{"ok": true}', "application/json", {})

    do_POST = do_GET

    def _echo(self, query: dict[str, str]) -> None:
        name = query.get("h", "X-API-Key")
        state = self.server.state
        if name == "digest":
            if not (self.headers.get("Authorization") or "").startswith("Digest "):
                challenge = 'Digest realm="jobs", nonce="0a1b2c3d4e5f", qop="auth"'
                self._send(401, b"{}", "application/json", {"WWW-Authenticate": challenge})
                return
            value = state.digest_password
        else:
            value = part_of(from_wire(self.headers.get(name) or ""), query.get("part", "whole"))
        where = query.get("where", "json")
        spelling = Spelling.from_query(query)
        text = encode(value, spelling, ascii_only=where in ("header", "location", "operation"))
        pad = "." * int(query.get("pad", "0"))
        status = int(query.get("status", "401"))
        headers: dict[str, str] = {}
        if where == "json":
            body = json.dumps({"message": f"{pad}rejected {name}: {text}"}).encode()
        elif where == "jsonraw":  # escapes as they are on the wire; no "message" to extract
            body = ('{"detail": "' + pad + "rejected " + text + '"}').encode()
        elif where == "html":
            page = f"<html><body><p>{pad}Rejected {html.escape(name)}: {text}</p></body></html>"
            body = page.encode()
        elif where == "header":
            headers["X-Echo"] = text
            body = b"{}"
        elif where == "location":
            headers["Location"] = f"/landing?echo={text}"
            status, body = 302, b""
        elif where == "operation":  # a job accepted: poll it there
            headers["Operation-Location"] = f"/landing?job=7&echo={text}"
            status, body = 202, b"{}"
        else:
            body = f"{pad}rejected {name}: {text}\n".encode()
        ctype = {"html": "text/html", "text": "text/plain"}.get(where, "application/json")
        self._send(status, body, ctype, headers)


class _EchoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: EchoState

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class EchoServer:
    """A threaded echo server on 127.0.0.1 (also reachable as ``localhost``)."""

    def __init__(self) -> None:
        self.server = _EchoHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.state = EchoState()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def state(self) -> EchoState:
        """Out-of-band values (Digest password, the cookie to set)."""
        return self.server.state

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
