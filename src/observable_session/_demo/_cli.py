"""Command-line parsing for ``python -m observable_session``: options in, a frozen value out.

Nothing here imports the demo's optional dependencies, so ``--help`` and every usage error
work without the ``[demo]`` extra.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from .._version import __version__
from ..redaction import DEFAULT_REDACTOR

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_REQUESTS",
    "PROG",
    "DemoOptions",
    "UpstreamOptions",
    "UsageError",
    "parse_args",
]

PROG = "observable-session"
DEFAULT_REQUESTS = 60
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64


class UsageError(Exception):
    """A bad command line; the message is one line that names the offending option."""

    def __init__(self, message: str, prog: str = PROG) -> None:
        super().__init__(message)
        self.prog = prog

    def __str__(self) -> str:
        return f"{self.prog}: error: {self.args[0]} (see {self.prog} --help)"


@dataclass(frozen=True)
class DemoOptions:
    """What ``observable-session demo`` was asked to do."""

    requests: int | None = DEFAULT_REQUESTS
    concurrency: int = DEFAULT_CONCURRENCY
    duration: float | None = None
    forever: bool = False
    otlp: str | None = None
    prometheus_port: int | None = None
    prometheus_host: str = "127.0.0.1"
    json: bool = False
    target: str | None = None
    seed: int | None = None
    log_file: str | None = None

    @property
    def is_long_run(self) -> bool:
        """Whether the run is bounded by time (``--duration``/``--forever``), not by a count."""
        return self.forever or self.duration is not None


@dataclass(frozen=True)
class UpstreamOptions:
    """What ``observable-session upstream`` was asked to do."""

    host: str = "127.0.0.1"
    port: int = 8080
    other_port: int = 8081


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises one-line ``UsageError``s instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _concurrency(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_CONCURRENCY}, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _http_url(text: str) -> str:
    """Accept an absolute http(s) URL with a host and no credentials, query or fragment."""
    # Quoted in an error, the URL is masked: a refused one may carry a password or token.
    shown = repr(DEFAULT_REDACTOR.mask_url(text))
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a valid URL: {shown}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {shown}")
    if parts.username is not None or parts.password is not None:
        raise argparse.ArgumentTypeError("credentials in the URL are not supported")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"expected a URL without query or fragment: {shown}")
    if port == 0:
        raise argparse.ArgumentTypeError(f"port 0 is not a valid target port: {shown}")
    return text.rstrip("/")


def _build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="A requests.Session that traces and measures every attempt and retry.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a workload against a misbehaving upstream and show every attempt",
        description=(
            "Start an embedded misbehaving upstream on 127.0.0.1 (flaky 503s, 429 with "
            "Retry-After, a connection reset, a slow endpoint that times out, a cross-origin "
            "redirect, an endpoint that echoes the credential back), drive a workload through "
            "an instrumented Session, and show a waterfall of one retried request, a summary "
            "per route and the JSON log lines it wrote, with the credential REDACTED."
        ),
    )
    amount = demo.add_mutually_exclusive_group()
    amount.add_argument(
        "--requests",
        type=_positive_int,
        metavar="N",
        help=f"logical requests to make (default {DEFAULT_REQUESTS})",
    )
    amount.add_argument(
        "--duration", type=_positive_seconds, metavar="S", help="run for S seconds instead"
    )
    amount.add_argument(
        "--forever", action="store_true", help="run until interrupted (Ctrl-C or SIGTERM)"
    )
    demo.add_argument(
        "--concurrency",
        type=_concurrency,
        default=DEFAULT_CONCURRENCY,
        metavar="K",
        help=f"worker threads sharing one Session (default {DEFAULT_CONCURRENCY})",
    )
    demo.add_argument(
        "--otlp",
        type=_http_url,
        metavar="URL",
        help="also export traces, metrics and logs over OTLP/HTTP to URL (e.g. http://localhost:4318)",
    )
    demo.add_argument(
        "--prometheus-port",
        type=_port,
        metavar="P",
        help="serve Prometheus metrics on HOST:P/metrics while running (0 picks a free port)",
    )
    demo.add_argument(
        "--prometheus-host",
        default="127.0.0.1",
        metavar="HOST",
        help="interface for --prometheus-port (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    demo.add_argument(
        "--json", action="store_true", help="print one machine-readable JSON document instead"
    )
    demo.add_argument(
        "--target",
        type=_http_url,
        metavar="URL",
        help="run the workload against this upstream instead of the embedded one",
    )
    demo.add_argument(
        "--seed", type=_seed, metavar="INT", help="seed for the workload mix (default: random)"
    )
    demo.add_argument(
        "--log-file",
        metavar="PATH",
        help="also write every JSON log line to PATH (overwritten)",
    )

    upstream = commands.add_parser(
        "upstream",
        help="serve the demo's misbehaving upstream on its own (a target for demo --target)",
        description=(
            "Serve the demo's misbehaving job API on HOST:PORT and its 'other origin' on "
            "HOST:OTHER_PORT until interrupted."
        ),
    )
    upstream.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    upstream.add_argument("--port", type=_port, default=8080, help="job API port (default 8080)")
    upstream.add_argument(
        "--other-port", type=_port, default=8081, help="other-origin port (default 8081)"
    )
    return parser


def parse_args(argv: list[str]) -> DemoOptions | UpstreamOptions | None:
    """Parse a command line; ``None`` means no command was given. Raises ``UsageError``."""
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        return DemoOptions(
            requests=None if args.duration or args.forever else args.requests or DEFAULT_REQUESTS,
            concurrency=args.concurrency,
            duration=args.duration,
            forever=args.forever,
            otlp=args.otlp,
            prometheus_port=args.prometheus_port,
            prometheus_host=args.prometheus_host,
            json=args.json,
            target=args.target,
            seed=args.seed,
            log_file=args.log_file,
        )
    if args.command == "upstream":
        return UpstreamOptions(host=args.host, port=args.port, other_port=args.other_port)
    return None


def format_help() -> str:
    """The top-level help text."""
    return _build_parser().format_help()
