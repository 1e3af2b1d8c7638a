"""Retry policy: which failures are retried, how long to wait, and the bounds on both."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime

# 429 and 503 say "not now"; 502 and 504 are a gateway's transient failures.
RETRY_AFTER_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``max_attempts`` tries per request and ``max_total_wait`` seconds of waiting.

    Backoff is exponential from ``base_delay`` up to ``max_delay`` with full jitter; a server's
    ``Retry-After`` is honoured as given (it is not jittered), but never beyond the total budget.
    """

    max_attempts: int = 5
    max_total_wait: float = 60.0
    base_delay: float = 0.2
    max_delay: float = 10.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before attempt ``attempt + 1`` (``attempt`` counts from 1) with full jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
