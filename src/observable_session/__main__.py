"""``python -m observable_session`` and the ``observable-session`` console script.

Commands: ``demo`` (a workload against a misbehaving upstream, every attempt shown) and
``upstream`` (that upstream on its own, as a ``demo --target``).
"""

from __future__ import annotations

import sys

from ._demo import DemoOptions, UsageError, format_help, parse_args

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_args(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version print, then exit 0
        return exc.code if isinstance(exc.code, int) else 0
    if options is None:
        print(format_help(), file=sys.stderr, end="")
        return 2

    from ._demo._run import DemoError, run_demo, run_upstream

    try:
        if isinstance(options, DemoOptions):
            return run_demo(options, stdout=sys.stdout, stderr=sys.stderr)
        return run_upstream(options.host, options.port, options.other_port, stdout=sys.stdout)
    except DemoError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
