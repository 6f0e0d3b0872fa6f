"""The forms of a secret the redactor finds: escaped, encoded, decoded, at any scale."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import threading
from urllib.parse import quote, quote_plus

import pytest

from observable_session.redaction import REDACTED, Redactor

SECRET = "Bearer s3cr+t/Tok&n<é>'\"-0123456789abcdef"
CRED = SECRET.partition(" ")[2]


class Owner:
    """Owns secrets in a redactor."""


@pytest.fixture
def redactor() -> Redactor:
    """A redactor knowing SECRET."""
    r = Redactor(grace_seconds=0)
    r.owner = Owner()  # type: ignore[attr-defined]
    r.set_secrets(r.owner, [SECRET])  # type: ignore[attr-defined]
    return r


def every_char(text: str, fmt: str) -> str:
    return "".join(fmt.format(ord(c)) for c in text)


def b64(text: str, *, url: bool = False, pad: bool = True) -> str:
    raw = text.encode()
    out = (base64.urlsafe_b64encode if url else base64.b64encode)(raw).decode()
    return out if pad else out.rstrip("=")


FORMS = {
    "raw": SECRET,
    "credential": CRED,
    "json": json.dumps(SECRET)[1:-1],
    "json ascii": json.dumps(SECRET, ensure_ascii=True)[1:-1],
    "json every char lower": every_char(CRED, "\\u{:04x}"),
    "json every char upper": every_char(CRED, "\\u{:04X}"),
    "json slash": json.dumps(CRED).replace("/", "\\/")[1:-1],
    "json twice": json.dumps(json.dumps(CRED))[1:-1],
    "html": html.escape(CRED),
    "html decimal": every_char(CRED, "&#{};"),
    "html hex": every_char(CRED, "&#x{:x};"),
    "html hex upper": every_char(CRED, "&#X{:X};"),
    "percent": quote(CRED, safe=""),
    "percent lower": re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(CRED, safe="")),
    "percent every byte": "".join(f"%{b:02X}" for b in CRED.encode()),
    "plus for blank": quote_plus(SECRET),
    "json of percent": json.dumps(quote(CRED, safe=""))[1:-1],
    "repr": repr(CRED)[1:-1],
    "ascii": ascii(CRED)[1:-1],
    "utf-8 read as latin-1": CRED.encode().decode("latin-1"),
    "b64 value": b64(SECRET),
    "b64 value unpadded": b64(SECRET, pad=False),
    "b64url value": b64(SECRET, url=True),
    "b64url value unpadded": b64(SECRET, url=True, pad=False),
    "b64 credential": b64(CRED),
    "b64url credential unpadded": b64(CRED, url=True, pad=False),
}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_form_is_masked_in_free_text(redactor: Redactor, name: str) -> None:
    """Each spelling, inside ordinary text, leaves nothing of the secret behind."""
    form = FORMS[name]
    masked = redactor.mask(f"upstream said {{{form}}} and stopped")
    assert form not in masked and "0123456789" not in masked
    assert masked.startswith("upstream said {") and masked.endswith("} and stopped")


def test_decoded_basic_pair_and_password_are_masked() -> None:
    """``Basic`` values are masked decoded: ``user:pass`` and the password."""
    r = Redactor(grace_seconds=0)
    owner = Owner()
    r.set_secrets(owner, ["Basic " + b64("svc-user:pa55-w0rd-XYZ")])
    assert r.mask("login svc-user:pa55-w0rd-XYZ") == f"login {REDACTED}"
    assert r.mask("pw=pa55-w0rd-XYZ") == f"pw={REDACTED}"
    assert r.mask("user svc-user") == "user svc-user"


def test_a_plus_in_the_secret_survives_form_decoding() -> None:
    """A literal ``+`` is found whether text is read with ``+`` as a blank or not."""
    r = Redactor(grace_seconds=0)
    owner = Owner()
    r.set_secrets(owner, ["a+b+c+d+e+f+g+h+i+j"])
    assert r.mask(json.dumps({"k": "a+b+c+d+e+f+g+h+i+j", "u": "x\\/y"})).count(REDACTED) == 1


def test_shared_prefix_secrets_are_all_masked() -> None:
    """Thousands of tokens sharing a long prefix (JWT style) are each found."""
    r = Redactor(grace_seconds=0)
    owners = [Owner() for _ in range(2000)]
    tokens = [f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{secrets.token_urlsafe(24)}" for _ in owners]
    for owner, tok in zip(owners, tokens, strict=True):
        r.set_secrets(owner, [f"Bearer {tok}"])
    assert all(r.mask(f"got {tok}!") == f"got {REDACTED}!" for tok in tokens[::97])
    assert r.mask("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.unknown") != REDACTED


def test_short_secret_is_masked_and_forgotten() -> None:
    """A 4-character secret is masked (regex tier) and dropped with its owner."""
    r = Redactor(grace_seconds=0)
    owner = Owner()
    r.set_secrets(owner, ["Zq9!"])
    assert r.mask("a Zq9! b") == f"a {REDACTED} b"
    r.forget(owner)
    assert r.mask("a Zq9! b") == "a Zq9! b"


@pytest.mark.parametrize("length", [7, 12, 13, 20, 21, 40])
def test_every_length_tier_finds_the_secret_at_every_offset(length: int) -> None:
    """Whatever tier a secret falls in, it is found at any position of the text."""
    r = Redactor(grace_seconds=0)
    owner = Owner()
    secret = secrets.token_hex(length)[:length]
    r.set_secrets(owner, [secret])
    for offset in range(40):
        assert secret not in r.mask("." * offset + secret + " tail")


def test_unregistering_one_of_two_owners_keeps_the_shared_value() -> None:
    """Two owners of the same value: forgetting one leaves it masked."""
    r = Redactor(grace_seconds=0)
    first, second = Owner(), Owner()
    r.set_secrets(first, ["shared-value-0123456789"])
    r.set_secrets(second, ["shared-value-0123456789"])
    r.forget(first)
    assert r.mask("shared-value-0123456789") == REDACTED
    r.forget(second)
    assert r.mask("shared-value-0123456789") == "shared-value-0123456789"


def test_nan_and_odd_escapes_do_not_break_masking(redactor: Redactor) -> None:
    """Broken escapes, lone surrogates and huge entities are left alone, secrets masked."""
    text = f"\\u12 \\ud800 &#99999999; %zz %e2%82 &bogus; {CRED} \\"
    masked = redactor.mask(text)
    assert CRED not in masked and masked.startswith("\\u12 \\ud800 &#99999999; %zz")


def test_masking_races_registration() -> None:
    """Threads masking while others register and forget never see a registered value."""
    r = Redactor(grace_seconds=0)
    errors: list[str] = []

    def churn() -> None:
        for _ in range(300):
            owner = Owner()
            value = f"churn-{secrets.token_hex(12)}"
            r.set_secrets(owner, [value])
            if r.mask(f"x {value} y") != f"x {REDACTED} y":
                errors.append(value)
            r.forget(owner)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize(
    "value",
    ["Bearer " + "a1B2c3D4e5F6g7H8i9", "k3y-0123456789abcdef", "Token abcd", "Bearer x/y=z_-0123"],
)
def test_fast_path_of_supers_matches_the_general_one(value: str) -> None:
    """The direct computation for common values detects and replaces what the general one does."""
    from observable_session.redaction._forms import atoms, minimal, supers_of

    forms = atoms(value)
    fast = supers_of(value)
    assert set().union(*fast.values()) == forms  # every form is replaced
    assert all(any(atom in form for atom in fast) for form in forms)  # and detected
    assert minimal(frozenset(fast)) == minimal(forms)
