"""The package version, read by hatchling and by the telemetry scope."""

__version__ = "0.1.0"
