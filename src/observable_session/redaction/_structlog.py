"""The structlog processors: every event scrubbed by key and by value before rendering."""

from __future__ import annotations

from typing import Any, Final

from ._names import REDACTED
from ._redactor import _SCALARS, Redactor
from ._registry import DEFAULT_REDACTOR

__all__ = ["EventRedactor", "redact_event"]


# Keys structlog's ProcessorFormatter uses for its own bookkeeping: never rewritten.
_STRUCTLOG_META: Final = frozenset({"_record", "_from_structlog", "_logger", "_name"})


def _redact_event_dict(redactor: Redactor, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The hot path of every log line: the common cases are inlined (a cached name lookup;
    # one detection search for all the strings of the event and of its nested dicts) and
    # everything else goes through the redactor.
    if redactor._pending or redactor._grace:
        redactor._housekeeping()
    names = redactor._name_cache
    clean = redactor._clean_texts()  # before the search (see there)
    exc_info = event_dict.get("exc_info")
    texts: list[str] = []
    targets = [event_dict]
    for key, value in event_dict.items():
        sensitive = names.get(key)
        if sensitive is None:
            sensitive = redactor.is_sensitive_name(key)
        if sensitive:
            event_dict[key] = REDACTED
        elif type(value) is str:
            if value not in clean:
                texts.append(value)
        elif type(value) is dict:
            copy = redactor._copy_mapping(value, texts, clean)
            event_dict[key] = copy
            targets.append(copy)
        elif value is not None and type(value) not in _SCALARS and key not in _STRUCTLOG_META:
            event_dict[key] = redactor.scrub(value)
    redactor._mask_strings_if_needed(texts, targets, clean)
    if exc_info:
        event_dict["exc_info"] = redactor.sanitize_exc_info(exc_info)
    return event_dict


class EventRedactor:
    """A structlog processor that scrubs an event dict with a given :class:`Redactor`.

    By key (a sensitive key's value becomes ``REDACTED``) and by value, recursively through
    dicts, lists and tuples; ``exc_info`` becomes a masked copy of the exception and its
    chain, already rendered tracebacks (``exception``, ``stack``) are masked as text. It
    must run before any renderer; it is safe to run more than once.
    """

    __slots__ = ("_redactor",)

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = DEFAULT_REDACTOR if redactor is None else redactor

    def __call__(self, logger: object, method_name: str, event_dict: Any) -> Any:
        """Scrub ``event_dict`` in place (nested values are copied, never mutated)."""
        return _redact_event_dict(self._redactor, event_dict)


def redact_event(logger: object, method_name: str, event_dict: Any) -> Any:
    """The structlog processor that scrubs an event with :data:`DEFAULT_REDACTOR`.

    See :class:`EventRedactor`; place it before any exception formatter and renderer.
    """
    return _redact_event_dict(DEFAULT_REDACTOR, event_dict)
