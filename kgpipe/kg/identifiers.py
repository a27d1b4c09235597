"""Identifiers in names and attribute values: model numbers (tokens of at least 4 characters mixing letters and
digits, such as PSLX350H), checksum-valid ISBNs and phone numbers, and the plain numbers left once those are
taken out. Equal identifiers say two records are one thing; two different identifiers of the same shape say
they are not ('Sony Turntable PSLX350H' against 'Sony Turntable PSLX250H').

>>> sorted(find_identifiers("Sony Turntable - PSLX350H, 2 speakers").codes)
['PSLX350H']
>>> find_identifiers("ISBN 0-306-40615-2").codes
frozenset({'isbn:9780306406157'})
>>> find_identifiers("call (404) 231-1368").codes
frozenset({'tel:2311368'})

A shape is what two codes must share for their difference to count: 'isbn', 'tel', and for model numbers the
pattern of letter and digit runs ('A9A' for PSLX350H); a number followed by a short unit keeps its letters
('9gb' for 16GB), so '16GB' against '32GB' differ while '16GB' against '120Hz' say nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PHONE = re.compile(  # with an area code (separators free), or a local number written with - or .
    r"(?<![\w+])(?:(?:\+\d{1,3}[\s.\-/]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.\-/])\d{3}[\s.\-/]?\d{4}|\d{3}[.\-]\d{4})(?!\w)")
_ISBN = re.compile(r"(?<![\w-])(?:97[89][\s-]?)?\d{1,5}[\s-]?\d{1,7}[\s-]?\d{1,7}[\s-]?[\dXx](?![\w-])")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-./#][A-Za-z0-9]+)*")
_DIGIT = re.compile(r"\d")   # every identifier and number has one: a text without is read no further
_UNIT = re.compile(r"^\d+[a-z]{1,4}$")
_RUNS = re.compile(r"[A-Z]+|\d+")
MIN_CODE = 4            # shortest model number
MIN_DIGIT_CODE = 6      # a run of this many digits is an identifier too (UPC, part number), not a quantity
PHONE_DIGITS = 7        # phones are compared on their last 7 digits (the area code is often left out)


@dataclass(frozen=True, slots=True)
class Identifiers:
    """What one text holds: identifier codes ('PSLX350H', 'isbn:978...', 'tel:2311368') and the plain numbers
    outside them ('2' in 'iPad 2'), leading zeros dropped."""

    codes: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()

    def __or__(self, other: Identifiers) -> Identifiers:
        return Identifiers(self.codes | other.codes, self.numbers | other.numbers)


def digits_of(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def isbn13(text: str) -> str | None:
    """The ISBN-13 of an ISBN-10 or ISBN-13 written with or without hyphens, None unless its checksum holds."""
    raw = re.sub(r"[\s-]", "", text).upper()
    if len(raw) == 10 and raw[:9].isdigit() and (raw[9].isdigit() or raw[9] == "X"):
        values = [int(c) for c in raw[:9]] + [10 if raw[9] == "X" else int(raw[9])]
        if sum((10 - i) * v for i, v in enumerate(values)) % 11:
            return None
        body = "978" + raw[:9]
        return body + str((10 - sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(body)) % 10) % 10)
    if len(raw) == 13 and raw.isdigit() and raw[:3] in ("978", "979"):
        return raw if sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(raw)) % 10 == 0 else None
    return None


def phone_key(text: str) -> str | None:
    """The last 7 digits of a phone number (None with fewer than 7 digits or more than 15)."""
    digits = digits_of(text)
    return digits[-PHONE_DIGITS:] if PHONE_DIGITS <= len(digits) <= 15 else None


def code_shape(code: str) -> str:
    """What two codes must share for a difference to count (see the module docstring)."""
    kind, _, _ = code.partition(":")
    if kind in ("isbn", "tel"):
        return kind
    if _UNIT.match(code.lower()):
        return "9" + code.lower().lstrip("0123456789")
    return "".join("9" if run[0].isdigit() else "A" for run in _RUNS.findall(code))


def _is_code(word: str) -> bool:
    letters = any(c.isalpha() for c in word)
    digits = any(c.isdigit() for c in word)
    return (len(word) >= MIN_CODE and letters and digits) or (not letters and len(word) >= MIN_DIGIT_CODE)


_NONE = Identifiers()


def find_identifiers(text: str) -> Identifiers:
    """The identifiers of one text: ISBNs and phones first (their digits are not numbers or codes of their
    own), then model numbers (a token with its separators dropped, and each separated part, when it is long
    enough and mixes letters and digits; digits-only runs of 6 or more), then the plain numbers."""
    if _DIGIT.search(text) is None:   # most names: 20-40 times faster than the patterns finding nothing
        return _NONE
    codes: set[str] = set()
    rest = text
    for match in _ISBN.finditer(text):
        isbn = isbn13(match.group())
        # an ISBN-10 is taken where it is said to be one or written in its four hyphenated groups (a bare
        # 10-digit number is a phone as often, and passes the checksum one time in 11)
        if isbn and (len(digits_of(match.group())) == 13 or "isbn" in text.lower()
                      or re.fullmatch(r"\d+-\d+-\d+-[\dXx]", match.group())):
            codes.add("isbn:" + isbn)
            rest = rest.replace(match.group(), " ")
    for match in _PHONE.finditer(rest):
        key = phone_key(match.group())
        if key:
            codes.add("tel:" + key)
            rest = rest.replace(match.group(), " ")
    numbers: set[str] = set()
    for match in _TOKEN.finditer(rest):
        token = match.group().upper()
        parts = re.split(r"[-./#]", token)
        joined = "".join(parts)
        found = {form for form in (joined, *parts) if _is_code(form)}
        codes |= found
        if not found:
            numbers.update(p.lstrip("0") or "0" for p in parts if p.isdigit())
    return Identifiers(frozenset(codes), frozenset(numbers))


def value_identifiers(value: str) -> Identifiers:
    """The identifiers of an attribute that holds one (a model number column): the whole value with separators
    dropped when it has 3 or more characters, as well as the codes found in it ('HP CD994FN' gives HPCD994FN
    and CD994FN; '346' stays a code here, where in a name it would be a number)."""
    found = find_identifiers(value)
    whole = re.sub(r"[^A-Za-z0-9]", "", value).upper()
    codes = found.codes | ({whole} if len(whole) >= 3 else set())
    return Identifiers(frozenset(codes), frozenset())
