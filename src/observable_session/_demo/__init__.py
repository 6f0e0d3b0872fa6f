"""The demo behind ``python -m observable_session demo``: a workload against a misbehaving
upstream, shown as a waterfall, a per-route table and redacted JSON log lines.

Private: the command line is the interface. Importing this package imports nothing from the
``[demo]`` extra; ``_run`` does, once the command line asked for a run.
"""

from __future__ import annotations

from ._cli import DemoOptions, UpstreamOptions, UsageError, format_help, parse_args

__all__ = ["DemoOptions", "UpstreamOptions", "UsageError", "format_help", "parse_args"]
