"""Password policy (NIST SP 800-63B §5.1.1.2; DOMAIN.md §8): at least 12 characters, not a
common or breached password, not derived from the account's e-mail or the product's name, not
a repetition or sequence. No composition rules (no "one digit, one capital" theatre).

The common-password list ships with the package (``data/common-passwords.txt.gz``; source and
licence in ``data/common-passwords.NOTICE``) and is never fetched at run time.
"""

from __future__ import annotations

import functools
import gzip
import re
import unicodedata
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 256
COMMON_LIST = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"
PRODUCT_WORDS = ("pdm-records", "pdmrecords", "pdm records")
KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz",
                 "1234567890qwertyuiopasdfghjklzxcvbnm")
TOO_COMMON = "This password is too common or too easy to guess; a few unrelated words work well."


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased."""
    with gzip.open(COMMON_LIST, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def _normal(password: str) -> str:
    return unicodedata.normalize("NFKC", password).lower()


def _is_repetition(text: str) -> bool:
    """'aaaaaaaaaaaa', 'abcabcabcabc', 'passwordpassword': a short unit repeated."""
    return bool(re.fullmatch(r"(.{1,8}?)\1+", text))


def _is_sequence(text: str) -> bool:
    """A run along a keyboard row or the alphabet, forwards or backwards, possibly wrapping
    ('123456789012', 'qwertyuiopas', 'zyxwvutsrqpo')."""
    squeezed = text.replace(" ", "")
    if len(squeezed) < 4:
        return False
    for row in KEYBOARD_ROWS:
        for line in (row * 3, row[::-1] * 3):
            if squeezed in line:
                return True
    return False


def _common_core(text: str) -> bool:
    """A listed password padded with digits, punctuation or spaces ('iloveyou1234!')."""
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text)
    return len(core) >= 4 and core != text and (
        core in common_passwords() or _is_repetition(core) or _is_sequence(core))


def password_problems(password: str, email: str = "") -> list[str]:
    """Messages for a password that breaks the policy; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if problems:
        return problems
    text = _normal(password)
    local = email.lower().partition("@")[0]
    if (text in common_passwords() or _is_repetition(text) or _is_sequence(text)
            or _common_core(text)):
        problems.append(TOO_COMMON)
    elif email and (text == email.lower() or (len(local) >= 4 and local in text
                                             and len(text) - len(local) < 8)):
        problems.append("Do not base the password on your e-mail address.")
    elif any(word in text and len(text) - len(word) < 8 for word in PRODUCT_WORDS):
        problems.append("Do not base the password on the product's name.")
    return problems
