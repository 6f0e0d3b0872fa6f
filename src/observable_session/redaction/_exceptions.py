"""Masked copies of exceptions and their chains, safe to print, log and pickle."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["MaskedException", "sanitize_exception"]


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


class MaskedException(Exception):
    """A masked stand-in for an exception: ``str`` is ``"<qualified.Type>: <masked message>"``.

    Built by :meth:`Redactor.sanitize_exception`; it carries the original traceback (frames,
    never locals, are what ``traceback`` prints) and masked copies of the chain. It pickles
    (its type name and masked message; a traceback never crosses a process boundary).
    """

    def __init__(self, original_type: str, masked_message: str) -> None:
        text = f"{original_type}: {masked_message}" if masked_message else original_type
        super().__init__(text)
        #: The fully qualified name of the exception this stands in for.
        self.original_type = original_type
        #: The original message, masked.
        self.masked_message = masked_message

    def __reduce__(self) -> tuple[object, ...]:
        state = {
            key: getattr(self, key)
            for key in ("__cause__", "__context__", "__suppress_context__", "__notes__")
            if getattr(self, key, None) is not None
        }
        # BaseException.__setstate__ sets the chain back from ``state``.
        return (MaskedException, (self.original_type, self.masked_message), state)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable message>"


def sanitize_exception(exc: BaseException, mask: Callable[[str], str]) -> BaseException:
    """A masked copy of ``exc`` and its whole chain; ``exc`` itself is never changed."""
    return _sanitize(exc, mask, {})


def _sanitize(
    exc: BaseException, mask: Callable[[str], str], seen: dict[int, BaseException]
) -> BaseException:
    done = seen.get(id(exc))
    if done is not None:
        return done
    copy = MaskedException(_qualified_name(type(exc)), mask(_safe_str(exc)))
    seen[id(exc)] = copy
    copy = copy.with_traceback(exc.__traceback__)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        copy.__notes__ = [mask(str(n)) for n in notes]  # type: ignore[attr-defined]
    group_type = getattr(sys.modules["builtins"], "BaseExceptionGroup", None)
    if group_type is not None and isinstance(exc, group_type):
        children = [_sanitize(e, mask, seen) for e in exc.exceptions]
        copy.__notes__ = [  # type: ignore[attr-defined]
            *getattr(copy, "__notes__", []),
            *(f"sub-exception: {child}" for child in children),
        ]
    if exc.__cause__ is not None:
        copy.__cause__ = _sanitize(exc.__cause__, mask, seen)
    if exc.__context__ is not None:
        copy.__context__ = _sanitize(exc.__context__, mask, seen)
    copy.__suppress_context__ = exc.__suppress_context__
    return copy
