"""Password policy: length, not a common password (no composition-rule theatre; NIST 800-63B)."""

from __future__ import annotations

MIN_LENGTH = 12
MAX_LENGTH = 256
COMMON_PASSWORDS = frozenset({
    "password1234", "123456789012", "qwertyuiopas", "passwordpassword", "adminadminadmin",
    "letmeinletmein", "changemechangeme", "welcome12345", "iloveyou1234", "administrator",
})


def password_problems(password: str, email: str = "") -> list[str]:
    """Messages for a password that breaks the policy; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or (email and lowered == email.lower()):
        problems.append("This password is too common or too easy to guess.")
    return problems
