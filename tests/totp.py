"""RFC 6238 TOTP codes computed by the test itself from the base32 key, as an authenticator
app would (independent of the library the product uses to check them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time


def totp_at(b32_key: str, counter: int, digits: int = 6) -> str:
    clean = b32_key.replace(" ", "").replace("-", "").upper()
    key = base64.b32decode(clean + "=" * (-len(clean) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def current_counter(step: int = 30) -> int:
    return int(time.time()) // step


class CodeSource:
    """Hands out codes for increasing time steps: the product refuses a step used before
    (replay protection), so a test that needs several codes within 30 s takes the next step,
    which the verifier accepts within its clock-skew window."""

    def __init__(self, b32_key: str) -> None:
        self.b32_key = b32_key
        self.last = 0

    def next(self) -> str:
        self.last = max(current_counter(), self.last + 1)
        return totp_at(self.b32_key, self.last)
