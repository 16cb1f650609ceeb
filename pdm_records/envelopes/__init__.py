"""Design envelopes: limit documents and their pure evaluation against mesh measurements."""

from .evaluate import evaluate
from .limits import (
    THICKNESS_STATISTICS,
    EnvelopeError,
    EnvelopeLimits,
    ParameterSpec,
    find_problems,
)

__all__ = [
    "THICKNESS_STATISTICS",
    "EnvelopeError",
    "EnvelopeLimits",
    "ParameterSpec",
    "evaluate",
    "find_problems",
]
