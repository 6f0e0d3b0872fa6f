"""The canonical forms ("atoms") of a secret value: a few strings, not every spelling.

Escaped spellings (JSON ``\\uXXXX`` and ``\\/``, HTML entities, percent-encoding, ``+`` for
a blank) are not enumerated: the matcher decodes text holding escape characters and looks
for the atoms in the decoded text too (see :mod:`._decode`). What decoding cannot undo is
listed here:

- the value and the credential after an auth scheme (``Bearer xyz`` -> ``xyz``);
- for ``Basic``, the decoded ``user:pass`` and the password;
- base64, standard and URL-safe, without padding (a padded form holds the unpadded one), of
  the value and of the credential (their UTF-8 and, outside ASCII, their latin-1 bytes:
  what the wire carries);
- for a value outside ASCII, its UTF-8 bytes read as latin-1 (how ``http.server`` echoes a
  header it received), and its latin-1 bytes read as UTF-8 with U+FFFD for what does not
  decode (a server that echoes the bytes it received into a UTF-8 body);
- for a value holding ``+``, the value with blanks for ``+`` (a form decoder reads a literal
  ``+`` as a blank);
- for a value holding an escape-like sequence (``\\``, ``%41``, ``&amp;``), the value as
  each escape family's decoding leaves it (a text spelling another of its characters
  escaped is read back with the value's own sequence decoded too).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from typing import Final

from ._decode import decoded_forms, has_escapes

__all__ = ["MIN_FORM_LENGTH", "atoms", "derived_forms", "supers_of"]

#: Shorter forms are never registered: masking them would garble ordinary text.
MIN_FORM_LENGTH: Final = 4

# "<scheme> <credential>": the credential is everything after the first blank, so blanks
# that belong to it (a caller may send them elsewhere, in a query say) are kept.
_SCHEME_VALUE: Final = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)[ \t](.*\S.*)", re.DOTALL)


def _credential_parts(value: str) -> set[str]:
    """``value``, the credential after its auth scheme, and Basic's decoded parts."""
    parts = {value, value.strip()}
    match = _SCHEME_VALUE.fullmatch(value.lstrip())
    if match is None:
        return parts
    scheme, credential = match.group(1), match.group(2)
    parts.update((credential, credential.strip()))
    if scheme.lower() == "basic":
        parts.update(_basic_parts(credential.strip()))
    return parts


def _basic_parts(credential: str) -> set[str]:
    try:
        raw = base64.b64decode(credential, validate=True)
    except (binascii.Error, ValueError):
        return set()
    for encoding in ("utf-8", "latin-1"):
        try:
            decoded = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        # The user name alone is not a secret (it is often in URLs and logs on purpose).
        return {decoded, decoded.partition(":")[2]}
    return set()


def _base64_forms(part: str) -> set[str]:
    raws = [part.encode("utf-8", "surrogatepass")]
    if not part.isascii():
        # A header goes on the wire as latin-1: a server that base64-encodes the bytes it
        # received (Go's header values, Python's ``.encode("latin-1")``) echoes those.
        with contextlib.suppress(UnicodeEncodeError):
            raws.append(part.encode("latin-1"))
    found = set()
    for raw in raws:
        std = base64.b64encode(raw).decode("ascii").rstrip("=")
        found |= {std, std.replace("+", "-").replace("/", "_")}
    return found


_PERCENT: Final = re.compile(r"%[0-9A-F]{2}")


def _url_cut_forms(part: str) -> set[str]:
    """A value holding ``#`` or ``?`` is cut there when it goes into a URL.

    What is left (``::{#`` sent in a query is ``::%7B``) is no longer the value, so it is
    registered as requests spells it, with upper- and lower-case escapes.
    """
    from requests.models import PreparedRequest  # only for such values: requests is slow

    found: set[str] = set()
    for probe, marker in (("http://h/?q=", "?q="), ("http://h/p/", "/p/")):
        try:
            prepared = PreparedRequest()
            prepared.prepare_url(probe + part, None)
        except Exception:  # a value requests refuses has no URL spelling
            continue
        url = prepared.url or ""
        form = url[url.index(marker) + len(marker) :] if marker in url else ""
        found |= {form, _PERCENT.sub(lambda m: m.group(0).lower(), form)}
    return found


def atoms(value: str) -> frozenset[str]:
    """The forms of ``value`` the matcher looks for (each 4+ characters)."""
    parts = _credential_parts(value)
    found: set[str] = set()
    for part in parts:
        found.add(part)
        if not part.isascii():
            found.add(part.encode("utf-8", "surrogatepass").decode("latin-1"))
            # The latin-1 bytes a header travels as, echoed as they came into a body read
            # as UTF-8 (the session's own message, requests' ``.text`` for JSON).
            with contextlib.suppress(UnicodeEncodeError):
                found.add(part.encode("latin-1").decode("utf-8", "replace"))
    found |= {f.replace("+", " ") for f in found if "+" in f}
    # A value holding escape-like sequences, echoed with another character escaped, is read
    # back with its own sequences decoded too: those readings are forms of it.
    found |= {d for f in list(found) for d in decoded_forms(f)}
    for part in parts:
        if "#" in part or "?" in part:
            found |= _url_cut_forms(part)
    for part in parts:  # the value and the credential, each as given and stripped
        # By bytes: three characters outside ASCII (a credential whose trailing NBSP was
        # stripped) are six bytes, whose base64 is as distinctive as any.
        if len(part.encode("utf-8", "surrogatepass")) >= MIN_FORM_LENGTH:
            found |= _base64_forms(part)
    return frozenset(f for f in found if len(f) >= MIN_FORM_LENGTH)


def minimal(forms: frozenset[str]) -> frozenset[str]:
    """The forms that contain no other form: enough to detect any of ``forms``.

    ``Bearer xyz`` holds ``xyz``: text holding the former holds the latter.
    """
    kept: list[str] = []
    for form in sorted(forms, key=len):
        if not any(shorter in form for shorter in kept):
            kept.append(form)
    return frozenset(kept)


def derived_forms(value: str) -> frozenset[str]:
    """Every form of ``value`` that is masked (the atoms; escaped spellings are decoded)."""
    return atoms(value)


def supers_of(value: str) -> dict[str, frozenset[str]]:
    """Each detecting atom of ``value`` with every form that holds it (itself included).

    The common case (an ASCII ``Bearer``-style value or a bare key, nothing a URL or a form
    decoder would cut or change) is computed directly; anything else takes the general way.
    """
    if (
        value.isascii()
        and value == value.strip()
        and not has_escapes(value)
        and "#" not in value
        and "?" not in value
    ):
        match = _SCHEME_VALUE.fullmatch(value)
        if match is None:
            if len(value) >= MIN_FORM_LENGTH:
                out = {value: frozenset((value,))}
                out.update((f, frozenset((f,))) for f in _base64_forms(value))
                return out
        else:
            credential = match.group(2)
            simple = match.group(1).lower() != "basic" and credential == credential.strip()
            if simple and len(credential) >= MIN_FORM_LENGTH and " " not in credential:
                out = {credential: frozenset((credential, value))}
                out.update((f, frozenset((f,))) for f in _base64_forms(value))
                out.update((f, frozenset((f,))) for f in _base64_forms(credential))
                return out
    forms = atoms(value)
    return {m: frozenset(f for f in forms if m in f) for m in minimal(forms)}
