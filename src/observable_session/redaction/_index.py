"""The value index: which registered atoms a text holds, in time independent of their number.

Every atom of ``L >= S + K - 1`` characters is filed under ``S`` of its ``K``-character
grams, one for each residue of their offsets modulo ``S`` (its last ``S`` grams, unless one
is crowded); any occurrence of it in a text then covers one of them at a multiple of ``S``,
so a text is checked with one dict lookup per ``S`` characters (C-speed slicing and
``isdisjoint``), whatever the number of atoms. Shorter atoms go to a finer tier or, under
seven characters, to a small regular expression compiled lazily. Registering and
unregistering are ``S`` dict updates per atom: nothing is recompiled globally, so sessions
can come and go by the thousand.

A gram hit is verified (``atom in text``) before anything is replaced. Text holding an
escape character is also checked in its decoded readings (:mod:`._decode`); a hit there is
mapped back to the original span, which is replaced.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
from collections.abc import Iterable
from typing import Final

from ._decode import (
    ANY_ESCAPE,
    MAX_ROUNDS,
    MOJIBAKE,
    decode,
    decode_mapped,
    family_readings,
    has_escapes,
    has_mojibake,
    repaired,
)
from ._grace import GracePool
from ._names import REDACTED

__all__ = ["FILE_AT", "ValueIndex"]

_PRESLICED: Final = 4096
#: Registrations waiting to be filed that make the next registration file them all: bounds
#: the work of the first search after many changes (each waiting one costs ~15 us then).
FILE_AT: Final = 64

_Supers = dict[str, frozenset[str]]


def _crowd(bucket: str | dict[str, None] | None) -> int:
    if bucket is None:
        return 0
    return 1 if type(bucket) is str else len(bucket)


class _Tier:
    """Atoms of at least ``min_length`` characters, filed by ``width``-grams every ``stride``.

    An occurrence of an atom at text position ``t`` is seen through the atom's grams at
    offsets ``o`` with ``o + t`` a multiple of the stride: one offset per residue class
    ``o mod stride`` suffices, and any offset of the class will do. Each atom is filed under
    the least crowded gram of each class, so atoms that share a prefix (every JWT starts
    ``eyJhbGciOi``) do not pile up under one key.
    """

    __slots__ = ("filed", "first", "grams", "min_length", "peak", "slices", "stride", "width")

    def __init__(self, width: int, stride: int) -> None:
        self.width = width
        self.stride = stride
        self.min_length = stride + width - 1
        # gram -> its atom, or a dict of its atoms (used as an ordered set) when shared.
        self.grams: dict[str, str | dict[str, None]] = {}
        self.filed: dict[str, tuple[str, ...]] = {}
        self.peak = 0
        self.slices = [slice(i, i + width) for i in range(0, _PRESLICED, stride)]
        self.first = self.slices_at(0)

    def slices_at(self, start: int) -> list[slice]:
        """The gram slices at offsets ``start .. start + stride - 1``."""
        return [slice(o, o + self.width) for o in range(start, start + self.stride)]

    def _choose(self, atom: str) -> tuple[str, ...]:
        grams, w, stride = self.grams, self.width, self.stride
        chosen = []
        for residue in range(stride):
            best, crowd = "", -1
            for o in range(residue, len(atom) - w + 1, stride):
                gram = atom[o : o + w]
                n = _crowd(grams.get(gram))
                if n == 0:
                    best = gram
                    break
                if crowd < 0 or n < crowd:
                    best, crowd = gram, n
            chosen.append(best)
        return tuple(chosen)

    def add(self, atom: str) -> None:
        grams = self.grams
        # The last ``stride`` grams cover every residue class; a secret's tail is far less
        # often shared than its head (a scheme, a JWT header, a key prefix such as sk-live-).
        tail = atom[-self.min_length :]
        keys = tuple(map(tail.__getitem__, self.first))
        if grams.keys().isdisjoint(keys) and len(set(keys)) == len(keys):
            grams.update(dict.fromkeys(keys, atom))  # the common case, at C speed
        else:
            keys = self._choose(atom)
            for key in set(keys):
                bucket = grams.get(key)
                if bucket is None:
                    grams[key] = atom
                elif isinstance(bucket, str):
                    grams[key] = {bucket: None, atom: None}
                else:
                    bucket[atom] = None
        self.filed[atom] = keys
        if len(grams) > self.peak:
            self.peak = len(grams)

    def remove(self, atom: str) -> None:
        grams = self.grams
        keys = self.filed.pop(atom, ())
        held = list(map(grams.get, keys))
        if held.count(atom) == len(held) and len(set(keys)) == len(keys):
            # Every key is this atom's alone (the common case): drop them at C speed.
            collections.deque(map(grams.pop, keys), maxlen=0)
            keys = ()
        for key in set(keys):
            bucket = grams.get(key)
            if bucket is None or bucket == atom:
                grams.pop(key, None)
            elif type(bucket) is dict:
                bucket.pop(atom, None)
                if len(bucket) == 1:
                    grams[key] = next(iter(bucket))
        if self.peak > 1024 and len(grams) < self.peak // 4:
            # A dict never shrinks its table: copy it so closed sessions give memory back.
            self.grams = dict(grams)
            self.filed = dict(self.filed)
            self.peak = len(self.grams)

    def grams_of(self, text: str) -> Iterable[str]:
        """The grams of ``text`` at the stride."""
        count = (len(text) - self.width) // self.stride + 1
        if count <= len(self.slices):
            return map(text.__getitem__, self.slices[:count])
        w = self.width
        return (text[i : i + w] for i in range(0, len(text) - w + 1, self.stride))

    def maybe_in(self, text: str) -> bool:
        """Whether ``text`` may hold an atom (no false negatives)."""
        return len(text) >= self.min_length and not self.grams.keys().isdisjoint(
            self.grams_of(text)
        )

    def found_in(self, text: str, out: set[str]) -> None:
        """Add to ``out`` the atoms ``text`` really holds."""
        grams = self.grams
        for key in self.grams_of(text):
            bucket = grams.get(key)
            if bucket is None:
                continue
            if type(bucket) is str:
                if bucket in text:
                    out.add(bucket)
                continue
            # list() of a dict is one C call: a writer cannot change it mid-way.
            for atom in list(bucket):
                if atom in text:
                    out.add(atom)


class ValueIndex:
    """Refcounted atoms (several owners may share one), each with the forms that hold it.

    A registration is only queued (``_waiting``) and filed under its grams by the next
    search, or once :data:`FILE_AT` are waiting. A registration only kept for a grace period
    is :meth:`park`-ed: taken out of the grams (as a compact fresh copy, so it pins none of
    the allocator pages its session's objects sat on) and filed again only by the next
    search. A session created and closed without a search in between costs no filing at all;
    the owner of the parked ones (the redactor's grace pool) bounds their number. Every
    search files what waits first, so nothing registered can be missed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(supers) -> (supers, how many adds of it wait): registered, not yet filed.
        self._waiting: dict[int, tuple[_Supers, int]] = {}
        #: Parked registrations (kept for a grace period), filed by the next search.
        self.grace = GracePool()
        #: Whether anything waits or is parked (one attribute for every search to read).
        self.unfiled = False
        # atom -> the form sets of each registration holding it (its length is the refcount):
        # found via the atom, every form of them is replaced, longest first.
        self._supers: dict[str, list[frozenset[str]]] = {}
        self._peak = 0
        self._tiers = (_Tier(6, 16), _Tier(6, 8), _Tier(4, 4))
        self._active: tuple[_Tier, ...] = ()
        self._short: set[str] = set()
        self._short_re: re.Pattern[str] | None = None
        self._short_dirty = False
        #: The longest form ever registered (never lowered): how far a cut must look ahead.
        self.longest = 0

    # -- writing (under the lock) ---------------------------------------------------
    def add(self, supers: dict[str, frozenset[str]]) -> None:
        """Register each atom of ``supers`` with the forms that hold it (filed lazily)."""
        longest = max(map(len, itertools.chain.from_iterable(supers.values())), default=0)
        with self._lock:
            if longest > self.longest:
                self.longest = longest
            waiting = self._waiting
            held = waiting.get(id(supers))
            waiting[id(supers)] = (supers, 1 if held is None else held[1] + 1)
            self.unfiled = True
            if len(waiting) >= FILE_AT:
                self._file_waiting(parked=False)

    def _file_waiting(self, *, parked: bool) -> None:
        # Emptied only once all is filed: a lock-free search that finds nothing waiting
        # must find everything filed.
        for supers, count in list(self._waiting.values()):
            for _ in range(count):
                self._add_now(supers)
        grace = self.grace
        if parked:
            for token in grace.waiting():
                for supers in _entries_of(token):
                    self._add_now(supers)
        self._refresh()
        self._waiting = {}
        if parked:
            grace.filed = len(grace)
            self.unfiled = False

    def file_waiting(self) -> None:
        """File every waiting and parked registration now (every search does this first)."""
        with self._lock:
            if self.unfiled:
                self._file_waiting(parked=True)

    def park(self, entries: list[_Supers], expiry: float) -> None:
        """Keep the registrations ``entries`` (each added before) until ``expiry``.

        They leave the grams (the next search files them again): kept as they are while
        none was filed yet, else as one block holding a copy of them all.
        """
        with self._lock:
            filed = False
            for supers in entries:
                held = self._waiting.get(id(supers))
                if held is not None and held[0] is supers:
                    if held[1] > 1:
                        self._waiting[id(supers)] = (supers, held[1] - 1)
                    else:
                        del self._waiting[id(supers)]
                else:
                    self._remove_now(supers)
                    filed = True
            self.grace.append(expiry, _block(entries) if filed else list(entries))
            self.unfiled = True

    def compact(self) -> None:
        """Turn every parked list of objects into one block (see :mod:`._grace`)."""
        with self._lock:
            self.grace.replace_entries(_compact)

    def drop_oldest(self) -> None:
        """Let go of the oldest parked registrations."""
        with self._lock:
            token, filed = self.grace.popleft()
            if filed:
                for supers in _entries_of(token):
                    self._remove_now(supers)

    def _add_now(self, supers: _Supers) -> None:
        known = self._supers
        for atom, forms in supers.items():
            held = known.get(atom)
            if held is None:
                known[atom] = [forms]
                self._file(atom, add=True)
                if len(known) > self._peak:
                    self._peak = len(known)
            else:
                held.append(forms)

    def remove(self, supers: _Supers) -> None:
        """Undo one :meth:`add` of ``supers``."""
        with self._lock:
            held = self._waiting.get(id(supers))
            if held is not None and held[0] is supers:
                if held[1] > 1:
                    self._waiting[id(supers)] = (supers, held[1] - 1)
                else:
                    del self._waiting[id(supers)]
                return
            self._remove_now(supers)

    def _remove_now(self, supers: _Supers) -> None:
        known = self._supers
        for atom, forms in supers.items():
            held = known.get(atom)
            if held is None:
                continue
            if len(held) > 1:
                held.remove(forms)
                continue
            del known[atom]
            self._file(atom, add=False)
        if self._peak > 1024 and len(known) < self._peak // 4:
            self._supers = dict(known)  # give the table back (dicts never shrink)
            self._peak = len(self._supers)
        self._refresh()

    def _file(self, atom: str, *, add: bool) -> None:
        for tier in self._tiers:
            if len(atom) >= tier.min_length:
                if add:
                    tier.add(atom)
                else:
                    tier.remove(atom)
                return
        if add:
            self._short.add(atom)
        else:
            self._short.discard(atom)
        self._short_dirty = True

    def _refresh(self) -> None:
        active = tuple(t for t in self._tiers if t.grams)
        if active != self._active:
            self._active = active
        if self._short_dirty:
            self._short_dirty = False
            self._short_re = None
            if self._short:
                alternatives = sorted(self._short, key=lambda a: (-len(a), a))
                self._short_re = re.compile("|".join(map(re.escape, alternatives)))

    def __len__(self) -> int:
        self.file_waiting()
        return len(self._supers)

    # -- reading (lock-free: every structure is swapped or updated atomically) ---------
    def _scan(self, text: str, out: set[str] | None) -> bool:
        hit = False
        for tier in self._active:
            if tier.maybe_in(text):
                if out is None:
                    return True
                tier.found_in(text, out)
                hit = True
        short = self._short_re
        if short is not None and short.search(text) is not None:
            if out is None:
                return True
            out.update(short.findall(text))
            hit = True
        return hit

    def find(self, text: str) -> set[str] | None:
        """The atoms ``text`` holds, raw or in a decoded reading; ``None`` if none.

        The common case (nothing registered is there, no escape character) is inlined: one
        ``isdisjoint`` per tier, at C speed, and four substring tests.
        """
        if self.unfiled:
            self.file_waiting()
        active, short = self._active, self._short_re
        if not active and short is None:
            return None
        hit = False
        size = len(text)
        for tier in active:
            if size >= tier.min_length:
                count = (size - tier.width) // tier.stride + 1
                if count <= len(tier.slices):
                    grams: Iterable[str] = map(text.__getitem__, tier.slices[:count])
                else:
                    grams = tier.grams_of(text)
                if not tier.grams.keys().isdisjoint(grams):
                    hit = True
                    break
        if not hit and short is not None and short.search(text) is not None:
            hit = True
        escaped = "\\" in text or "%" in text or "&" in text or "+" in text
        if not (hit or escaped):
            return None
        found: set[str] = set()
        self._scan(text, found)
        if escaped:
            for reading in decode(text):
                self._scan(reading, found)
        return found or None

    def replace(self, text: str, atoms: Iterable[str]) -> str:
        """``text`` with every form holding one of ``atoms`` replaced, escaped or not."""
        forms: set[str] = set()
        for atom in atoms:
            forms.add(atom)
            for held in list(self._supers.get(atom, ())):
                forms.update(held)
        ordered = sorted(forms, key=len, reverse=True)
        for _ in range(2):
            text = _replace_spans(text, _raw_spans(text, ordered))
            if has_escapes(text):
                text = _replace_spans(text, _decoded_spans(text, ordered))
            left = self.find(text)
            if not left or left.isdisjoint(forms):
                return text
        # An escape mix the span map could not undo: give the decoded text, masked (the
        # deepest reading that holds a form, else the deepest all-families one).
        readings = decode(text)
        holding = [r for r in readings if any(form in r for form in ordered)]
        text = holding[-1] if holding else readings[-1] if readings else text
        return _replace_spans(text, _raw_spans(text, ordered))


# A block at least this long is one allocation of the system allocator, not a slot in a
# pymalloc pool: freeing it returns it whole, and it pins no page of anyone else's objects.
_BLOCK: Final = 520


def _block(entries: list[_Supers]) -> str:
    """``entries`` as one string (JSON: any character survives)."""
    text = json.dumps([[[atom, sorted(forms)] for atom, forms in s.items()] for s in entries])
    return text.ljust(_BLOCK)


def _compact(token: object) -> object:
    return _block(token) if isinstance(token, list) else token


def _entries_of(token: object) -> list[_Supers]:
    if isinstance(token, list):
        return token
    assert isinstance(token, str)
    return [{atom: frozenset(forms) for atom, forms in s} for s in json.loads(token)]


def _raw_spans(text: str, forms: list[str]) -> list[tuple[int, int]]:
    """Every occurrence of each of ``forms`` in ``text``, overlapping ones included.

    Replaced one form after another, two secrets that overlap in an echo (one's tail is the
    other's head) would leave the head of the first one replaced second.
    """
    spans: list[tuple[int, int]] = []
    for form in forms:
        i = text.find(form)
        while i >= 0:
            spans.append((i, i + len(form)))
            i = text.find(form, i + 1)
    return spans


def _decoded_spans(text: str, forms: list[str]) -> list[tuple[int, int]]:
    """Spans of ``text`` whose decoded reading is one of ``forms``."""
    spans: list[tuple[int, int]] = []

    def search(decoded: str, s: list[int], e: list[int], *, repair: bool = True) -> None:
        for form in forms:
            i = decoded.find(form)
            while i >= 0:
                spans.append((s[i], e[i + len(form) - 1]))
                i = decoded.find(form, i + len(form))
        if repair and repaired(decoded) is not None:
            # Some characters escaped, the others UTF-8 read as latin-1: repair those too.
            fixed, s2, e2 = decode_mapped(decoded, MOJIBAKE)
            search(fixed, [s[i] for i in s2], [e[i - 1] for i in e2], repair=False)

    def step(
        current: str, s: list[int], e: list[int], pattern: re.Pattern[str], rounds: int
    ) -> tuple[str, list[int], list[int]]:
        """One decoding step, searched; its raw-repaired variant searched down to the end."""
        if has_mojibake(current):
            fixed, fs, fe = _composed(s, e, *decode_mapped(current, pattern, repair=True))
            for _ in range(rounds):
                search(fixed, fs, fe, repair=False)
                if not has_escapes(fixed):
                    break
                fixed, fs, fe = _composed(fs, fe, *decode_mapped(fixed))
        decoded, ds, de = _composed(s, e, *decode_mapped(current, pattern))
        search(decoded, ds, de)
        return decoded, ds, de

    identity = (list(range(len(text))), list(range(1, len(text) + 1)))
    current, starts, ends = text, *identity
    for level in range(MAX_ROUNDS):
        if not has_escapes(current):
            break
        decoded, starts, ends = step(current, starts, ends, ANY_ESCAPE, MAX_ROUNDS - level)
        if decoded == current:
            break
        current = decoded
    for _, path in family_readings(text):  # one escape family at a time (mixed texts)
        decoded, s, e = text, *identity
        for level, pattern in enumerate(path):
            decoded, s, e = step(decoded, s, e, pattern, MAX_ROUNDS - level)
    return spans


def _composed(
    starts: list[int], ends: list[int], decoded: str, s: list[int], e: list[int]
) -> tuple[str, list[int], list[int]]:
    """A decoding of a reading, mapped back to the text the reading came from."""
    return decoded, [starts[i] for i in s], [ends[i - 1] for i in e]


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out = []
    pos = 0
    for start, end in merged:
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = end
    out.append(text[pos:])
    return "".join(out)
