"""The redactor: who owns which secrets, for how long, and masking text with them."""

from __future__ import annotations

import contextlib
import functools
import itertools
import sys
import threading
import time
import weakref
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any, Final

from ._decode import MAX_GROWTH, has_escapes, open_escape_tail
from ._exceptions import sanitize_exception
from ._forms import supers_of
from ._index import ValueIndex
from ._names import REDACTED, NameRules
from ._structure import Structure

__all__ = ["GRACE_MAX_OWNERS", "GRACE_SECONDS", "Redactor"]

#: How long the values of a forgotten (closed or collected) owner stay masked.
GRACE_SECONDS: Final = 600.0
#: How many forgotten owners are remembered at most (the oldest go first).
GRACE_MAX_OWNERS: Final = 1024
_SCALARS: Final = frozenset({int, float, bool})
#: Strings remembered clean at most, and the longest one remembered (about 1 MB at most).
_CLEAN_MAX: Final = 4096
_CLEAN_LONGEST: Final = 256

_Supers = dict[str, frozenset[str]]


class Redactor:
    """Masks secrets by value, by name and inside URLs; thread-safe, cheap when idle.

    Args:
        sensitive_names: More field names whose values are secret.
        grace_seconds: How long values of a forgotten or collected owner stay masked.
        grace_max_owners: How many forgotten owners' values are kept at most.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        sensitive_names: Iterable[str] = (),
        *,
        grace_seconds: float = GRACE_SECONDS,
        grace_max_owners: int = GRACE_MAX_OWNERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self._index = ValueIndex()
        # owner key -> value -> its atoms: what forget() hands to the grace pool.
        self._owners: dict[int, dict[str, _Supers]] = {}
        self._peak_owners = 0
        # owner key -> (a weak reference whose callback reports the collection, its token)
        self._finalizers: dict[int, tuple[weakref.ref[Any], int]] = {}
        self._pending: list[tuple[int, int]] = []
        self._tokens = itertools.count()
        self._grace = self._index.grace
        self._grace_seconds = grace_seconds
        self._grace_max = grace_max_owners
        self._clock = clock
        self._names = NameRules(sensitive_names)
        self._name_cache = self._names.cache
        self._structure = Structure(self._names.detector_words(), self.is_sensitive_name)
        #: Replaced by a new object whenever the secrets change (for caches of masked text).
        self.generation: object = object()
        # Short strings found clean, and the generation they were found clean in: a log
        # line's constant fields (event name, level, logger, method) are not searched again
        # until the secrets change.
        self._clean: tuple[object, set[str]] = (self.generation, set())
        # Twice the parks so far, odd while one is under way (a sequence lock): a search
        # that overlapped one may have missed what it parked.
        self._parks = 0

    def _after_fork(self) -> None:
        # In a forked child: locks held by threads that do not exist there are made anew,
        # and a registration or park one of them was in the middle of (its values indexed,
        # the generation not yet replaced) makes a new generation here.
        self._lock = threading.RLock()
        self._index._lock = threading.Lock()
        self.generation = object()
        self._parks += self._parks & 1  # a park under way there never ends: not waited for

    @property
    def _matchers(self) -> object:
        # The name the telemetry's URL cache reads to notice a change of secrets.
        return self.generation

    # -- registration ---------------------------------------------------------------
    def set_secrets(self, owner: object, values: Iterable[str]) -> None:
        """Replace the values registered for ``owner``: the new ones are masked first.

        The values are forgotten by :meth:`forget`, or when ``owner`` is garbage-collected if
        it can be weakly referenced (after the grace period, in both cases).
        """
        self._register(owner, values, replace=True)

    def add_secrets(self, owner: object, values: Iterable[str]) -> None:
        """Register more values for ``owner``, keeping those it has."""
        self._register(owner, values, replace=False)

    def _register(self, owner: object, values: Iterable[str], *, replace: bool) -> None:
        wanted = {v: supers_of(v) for v in values if isinstance(v, str)}
        key = id(owner)
        with self._lock:
            self._drain_locked()
            current = self._owners.setdefault(key, {})
            new = [s for v, s in wanted.items() if v not in current]
            for supers in new:
                self._index.add(supers)  # registered before anything old is let go
            gone = [current.pop(v) for v in list(current) if v not in wanted] if replace else []
            # A value already held keeps its registration (the index knows that object).
            current.update((v, s) for v, s in wanted.items() if v not in current)
            for supers in gone:
                self._index.remove(supers)
            self._watch(owner, key)
            self._expire_locked()
            if new or gone:
                self.generation = object()

    def _watch(self, owner: object, key: int) -> None:
        current = self._finalizers.get(key)
        if current is None or current[0]() is None:
            # No finalizer yet, or a dead owner's whose collection is still pending and whose
            # id this owner reuses: a fresh token keeps that pending drop from removing this
            # owner's secrets. An owner that cannot be weakly referenced keeps its values
            # until forget().
            token = next(self._tokens)
            with contextlib.suppress(TypeError):
                ref = weakref.ref(owner, functools.partial(self._collected, key, token))
                self._finalizers[key] = (ref, token)

    def forget(self, owner: object, *, grace: bool = True) -> None:
        """Let go of ``owner``'s values: masked for the grace period unless ``grace=False``."""
        key = id(owner)
        with self._lock:
            self._finalizers.pop(key, None)  # its callback, if it still runs, finds no token
            self._retire_locked(key, grace=grace)
            self._drain_locked()

    def _retire_locked(self, key: int, *, grace: bool) -> None:
        values = self._owners.pop(key, None)
        self._peak_owners = max(self._peak_owners, len(self._owners) + 1)
        if self._peak_owners > 64 and len(self._owners) < self._peak_owners // 4:
            # Dicts never shrink their tables: copy them once most owners are gone.
            self._owners, self._finalizers = dict(self._owners), dict(self._finalizers)
            self._peak_owners = len(self._owners)
            self._compact_grace()
        if not values:
            return
        if grace and self._grace_seconds > 0 and self._grace_max > 0:
            # Parked: out of the grams until a search needs them.
            # Still masked, but a lock-free search that overlaps the park may miss them
            # (they leave the grams to be filed again by the next search): it searches
            # again (_find), and what it found clean is not trusted (a new generation).
            self._parks += 1
            try:
                self._index.park(list(values.values()), self._clock() + self._grace_seconds)
            finally:
                self._parks += 1
            self.generation = object()
            while len(self._grace) > self._grace_max:
                self._drop_oldest()
        else:
            for supers in values.values():
                self._index.remove(supers)
            self.generation = object()

    def _compact_grace(self) -> None:
        # Each entry was allocated when its owner was let go, in a hole of pages that other
        # owners' (now dead) objects filled: copied afresh once most owners are gone, the
        # pool sits on few pages and the rest go back to the system. Geometric (each time
        # the owners fall to a quarter), so amortized O(1) per owner.
        self._index.compact()

    def _drop_oldest(self) -> None:
        self._index.drop_oldest()
        self.generation = object()

    def _expire_locked(self, now: float | None = None) -> None:
        grace = self._grace
        if not grace:
            return
        if now is None:
            now = self._clock()
        if grace.first_expiry() <= now:
            while grace and grace.first_expiry() <= now:
                self._drop_oldest()

    def set_grace(self, seconds: float, max_owners: int) -> None:
        """Keep forgotten owners' values masked ``seconds`` long, for ``max_owners`` at most.

        More costs memory: each remembered session's values stay indexed (and pin the
        allocator pages they sit on) until they expire.
        """
        with self._lock:
            self._grace_seconds, self._grace_max = seconds, max_owners
            while len(self._grace) > max(max_owners, 0):
                self._drop_oldest()

    def expire(self, now: float | None = None) -> None:
        """Drop the values whose grace period is over at ``now`` (the clock's time by default).

        Done lazily by every registration and mask; a benchmark passes a later ``now``.
        """
        with self._lock:
            self._expire_locked(now)

    def add_sensitive_names(self, *names: str) -> None:
        """Treat each of ``names`` (case-insensitive, ``-``/``_`` ignored) as sensitive."""
        with self._lock:
            rules = self._names.extended(names)
            self._structure = Structure(rules.detector_words(), self.is_sensitive_name)
            self._names, self._name_cache = rules, rules.cache
            self.generation = object()  # text found clean under the old rules is not now

    def _collected(self, key: int, token: int, _ref: object = None) -> None:
        # Runs from the garbage collector, at any allocation: maybe inside the index, whose
        # lock this thread then holds (a park would wait on it for ever), or inside this
        # redactor (its lock is reentrant: a drain would change what the caller is in the
        # middle of). The owner is then dropped by the next mask, event or registration.
        self._pending.append((key, token))
        # (_is_owned: what threading.Condition asks an RLock; typeshed does not list it.)
        owned = self._lock._is_owned()  # type: ignore[attr-defined]
        if not owned and not self._index._lock.locked():
            self._try_drain()

    def _try_drain(self) -> None:
        while self._pending and self._lock.acquire(blocking=False):
            try:
                self._drain_locked()
            finally:
                self._lock.release()

    def _drain_locked(self) -> None:
        while self._pending:
            key, token = self._pending.pop()
            current = self._finalizers.get(key)
            if current is None or current[1] != token:
                continue  # a new owner now has this id; its secrets stay
            del self._finalizers[key]
            self._retire_locked(key, grace=True)

    def _housekeeping(self) -> None:
        if self._pending:
            self._try_drain()
        grace = self._grace
        if grace and grace.first_expiry() <= self._clock() and self._lock.acquire(blocking=False):
            try:
                self._expire_locked()
            finally:
                self._lock.release()

    # -- names ------------------------------------------------------------------------
    def is_sensitive_name(self, name: str) -> bool:
        """Whether a header, field, attribute or query key called ``name`` holds a secret."""
        return self._names.is_sensitive(name)

    # -- masking ----------------------------------------------------------------------
    def mask(self, text: str) -> str:
        """``text`` with every secret form, scheme credential and URL secret as REDACTED."""
        if self._pending or self._grace:
            self._housekeeping()
        parks = self._parks  # _find, inlined: the common case costs two attribute reads
        found = self._index.find(text)
        if found is None and (parks & 1 or parks != self._parks):
            found = self._find_again(text, parks)
        if found is None:
            if self._structure.detect(text) is None:
                return text
            return self._structure.mask(text)
        return self._structure.mask(self._index.replace(text, found))

    def _find(self, text: str) -> set[str] | None:
        """The registered atoms ``text`` holds, searched again if a park raced the search.

        A park takes values out of the grams and leaves them to the next search to file:
        a search that had already found nothing waiting would miss them. The search again
        first waits for a park under way (it holds the index's lock) and files what it
        parked. Not from inside this redactor (a line logged by a ``__del__`` that one of
        its allocations set off): the park under way may be this thread's own.
        """
        parks = self._parks
        found = self._index.find(text)
        if found is None and (parks & 1 or parks != self._parks):
            found = self._find_again(text, parks)
        return found

    def _find_again(self, text: str, parks: int) -> set[str] | None:
        found = None
        while found is None and (parks & 1 or parks != self._parks):
            if self._lock._is_owned():  # type: ignore[attr-defined]
                break
            parks = self._parks
            if parks & 1:
                time.sleep(0)  # the parking thread is between two steps: let it on
            self._index.file_waiting()
            found = self._index.find(text)
        return found

    def _mask_found(self, text: str) -> str:
        found = self._find(text)
        if found is not None:
            text = self._index.replace(text, found)
        return self._structure.mask(text)

    def _may_hold(self, text: str) -> bool:
        return self._structure.detect(text) is not None or self._find(text) is not None

    def mask_cut(self, text: str, limit: int) -> str:
        """``text`` masked, then cut to ``limit`` characters: no cut can split a secret.

        Only a margin past ``limit`` is masked (long enough for the longest atom spelled in
        three nested escape levels), so a huge body costs no more than its first characters;
        a run of escapes the cut goes through is dropped (it may be a longer spelling's head).
        """
        longest = self._index.longest
        margin = longest * MAX_GROWTH + 64
        head = text[: limit + margin]
        if not has_escapes(head):  # no escaped spelling: an atom shows as itself, unstretched
            margin = longest + 64
            head = head[: limit + margin]
        masked = self.mask(head)
        if len(text) > limit + margin and len(masked) <= limit:
            # Masking shrank the text below the limit: the margin's own cut shows, and a
            # value it split (no longer than the longest atom) goes with it.
            last = masked.rfind(REDACTED)
            keep = len(masked) - longest
            if last >= 0:
                keep = max(keep, last + len(REDACTED))
            masked = masked[: max(0, keep)]
        elif len(masked) > limit:
            masked = masked[:limit]
        else:
            return masked
        # An escape run the cut goes through may be the head of a spelling too long for the
        # margin: it is dropped rather than shown.
        return open_escape_tail(masked, margin)

    def mask_url(self, url: str) -> str:
        """``url`` with userinfo as ``REDACTED:REDACTED`` and sensitive query values REDACTED."""
        return self._structure.mask_url_parts(self.mask(url))

    # -- structures and exceptions ------------------------------------------------------
    def scrub(self, obj: object) -> object:
        """A copy of ``obj`` with sensitive keys' values REDACTED and every string masked.

        Recurses through mappings, lists and tuples; exceptions become masked strings; other
        objects are replaced by their masked ``repr`` only when that ``repr`` held a secret.
        """
        if isinstance(obj, str):
            return self.mask(obj)
        if obj is None or isinstance(obj, (bool, int, float)):
            return obj
        if isinstance(obj, Mapping):
            return self.scrub_mapping(obj)
        if isinstance(obj, (list, tuple)):
            items = [self.scrub(item) for item in obj]
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, BaseException):
            return str(self.sanitize_exception(obj))
        if isinstance(obj, (bytes, bytearray)):
            return self._scrub_bytes(obj)
        if isinstance(obj, (set, frozenset)):
            return [self.scrub(item) for item in obj]
        try:
            text = repr(obj)
        except Exception:
            return f"<unprintable {type(obj).__qualname__}>"
        masked = self.mask(text)
        return obj if masked == text else masked

    def _scrub_bytes(self, obj: bytes | bytearray) -> bytes | bytearray:
        """``obj`` read as UTF-8 and, outside ASCII, as latin-1, masked in both readings.

        A header goes on the wire as latin-1 and a server may echo it so (a body in
        ISO-8859-1): those bytes are no UTF-8 spelling of the value.
        """
        data = bytes(obj)
        text = data.decode("utf-8", "surrogateescape")
        masked = self.mask(text)
        if masked != text:
            data = masked.encode("utf-8", "surrogateescape")
        if not data.isascii():
            latin = data.decode("latin-1")
            masked = self.mask(latin)
            if masked != latin:
                data = masked.encode("latin-1", "backslashreplace")
        return obj if data == obj else data

    def scrub_mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        """A plain ``dict`` copy of ``mapping``: sensitive keys REDACTED, values scrubbed."""
        if self._pending or self._grace:
            self._housekeeping()
        texts: list[str] = []
        clean = self._clean_texts()
        out = self._copy_mapping(mapping, texts, clean)
        self._mask_strings_if_needed(texts, (out,), clean)
        return out

    def _copy_mapping(
        self, mapping: Mapping[Any, Any], texts: list[str], clean: Container[str] = ()
    ) -> dict[Any, Any]:
        """A copy with sensitive keys REDACTED and values scrubbed, strings excepted.

        Strings are kept as they are and appended to ``texts`` (unless in ``clean``), for
        one search later.
        """
        names = self._name_cache
        out: dict[Any, Any] = {}
        for key, value in mapping.items():
            # Only an exact str is looked up in the cache (see NameRules.is_sensitive).
            sensitive = names.get(key) if type(key) is str else None
            if sensitive is None:
                sensitive = self.is_sensitive_name(key)
            if sensitive:
                out[key] = REDACTED
                continue
            if type(value) is str:
                out[key] = value
                if value not in clean:
                    texts.append(value)
            elif value is None or type(value) in _SCALARS:
                out[key] = value
            else:
                out[key] = self.scrub(value)
        return out

    def _clean_texts(self) -> set[str]:
        """The strings found clean since the secrets last changed (to skip, and to add to).

        Taken before the search it serves: a secret registered meanwhile makes a new
        generation, and what that search found clean is then not trusted.
        """
        generation, clean = self._clean
        if generation is not self.generation:
            clean = set()
            self._clean = (self.generation, clean)
        return clean

    def _mask_strings_if_needed(
        self,
        texts: list[str],
        targets: Iterable[dict[Any, Any]],
        clean: set[str] | None = None,
    ) -> None:
        """Mask the string values of ``targets`` in place if any of ``texts`` needs it.

        ``texts`` are the strings of ``targets`` not in ``clean`` (:meth:`_clean_texts`);
        found clean, they join it. One search over all the strings joined costs far less
        than one per string; only when it finds something is each string looked at on its
        own.
        """
        if not texts:
            return
        if not self._may_hold("\n".join(texts)):
            if clean is not None:
                if len(clean) > _CLEAN_MAX:
                    clean.clear()
                clean.update(text for text in texts if len(text) <= _CLEAN_LONGEST)
            return
        for target in targets:
            for key, value in target.items():
                if type(value) is str:
                    target[key] = self._mask_found(value)

    def sanitize_exception(self, exc: BaseException) -> BaseException:
        """A masked copy of ``exc`` and its whole chain; ``exc`` itself is never changed.

        The copy is a :class:`MaskedException` whose message is the masked original, whose
        traceback is the original's, and whose ``__cause__``/``__context__`` are masked copies
        too, so ``traceback.format_exception(copy)`` holds no secret.
        """
        return sanitize_exception(exc, self.mask)

    def sanitize_exc_info(self, exc_info: object) -> object:
        """``exc_info`` as structlog and logging accept it, with the exception sanitized.

        ``True`` is resolved from :func:`sys.exc_info`; an exception or a ``(type, value,
        traceback)`` tuple becomes the masked copy; anything falsy is returned unchanged.
        """
        if not exc_info:
            return exc_info
        if isinstance(exc_info, BaseException):
            return self.sanitize_exception(exc_info)
        if isinstance(exc_info, tuple) and len(exc_info) == 3:
            value = exc_info[1]
        else:
            value = sys.exc_info()[1]
        if isinstance(value, BaseException):
            return self.sanitize_exception(value)
        return exc_info
