"""Retry policy: which failures are retried, how long to wait, and the bounds on both.

:func:`decide` is the whole decision for one failed attempt of a SCIM request, pure (the client does the I/O):
retry after a wait, give up with the failure, report the outcome unknown, or count a DELETE as done. The rule
that keeps users free of duplicates lives there: a request that is not idempotent (POST, PATCH) and that reached
the server is never sent again once its answer was lost (reset, timeout, 500/502/503/504 after sending). A definite
"no" is not a lost answer: any other error status says the write was not applied, and :func:`refused_for_the_run`
tells the refusals that the same request would meet again for the rest of a run (the target does not implement it).
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

# 429 and 503 say "not now"; 502 and 504 are a gateway's transient failures.
RETRY_AFTER_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
# Sending these twice has the effect of sending them once: a lost answer can be asked for again.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
# The only statuses that leave a write's outcome unknown: the server (or a gateway in front of it) failed while the
# write may have been applied. 501 and every 4xx are definite refusals: nothing was applied.
UNKNOWN_OUTCOME_STATUSES = frozenset({500, 502, 503, 504})
# What a 400 says when it refuses the operation itself rather than its data.
NOT_IMPLEMENTED = ("not implemented", "not supported", "unsupported")


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
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date, RFC 9110); None when absent or
    not one of those ("soon", "-5", "1e999", "3.5", non-ASCII digits, a broken date): the caller then backs off on
    its own. A huge delay comes back as it is (infinite past nine digits); the caller caps it."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) < 10 else float("inf")
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Failure(Enum):
    """How an attempt failed when the server gave no answer (an error status is given as a number instead)."""

    NOT_SENT = "not sent"      # the connection failed before anything was sent: always safe to send again
    UNTRUSTED = "untrusted"    # the server's TLS certificate did not verify: sending again cannot help
    LOST = "lost"              # sent, then the connection failed (reset, read timeout): the answer is lost
    LATE = "late"              # sent, and no complete answer within the request's deadline


class Verdict(Enum):
    RETRY = "retry"            # wait ``Decision.delay`` seconds, then send the request again
    FAIL = "fail"              # give up: the failure is the request's error
    UNKNOWN = "unknown"        # a write reached the server and its answer was lost: it may have been applied
    DONE = "done"              # a DELETE answered 404 after an earlier attempt was lost: that attempt did it


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """What one failed attempt of a request met. Exactly one of ``failure`` and ``status`` is set."""

    method: str                       # upper case, as sent
    number: int                       # counting from 1
    waited: float = 0.0               # seconds already waited between this request's attempts
    failure: Failure | None = None
    status: int | None = None         # an error status (400 and up)
    retry_after: float | None = None  # the answer's Retry-After, in seconds
    lost_before: bool = False         # an earlier attempt of this request was sent and its answer lost

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS


def decide(policy: RetryPolicy, attempt: Attempt, rng: random.Random | None = None) -> Decision:
    """What to do after ``attempt`` failed: retry (within the policy's attempts and total wait), fail, or unknown.

    - Not sent: retried with backoff, any method. An untrusted certificate: fail.
    - Lost or late: a write is UNKNOWN (never resent). An idempotent request is retried with backoff when lost;
      late, it fails (a server that could not answer within the deadline will not on a second try, and a
      trickling server then costs one deadline, not one per attempt).
    - 429 (any method: the request was not processed) and 503 (idempotent): after ``Retry-After``, else backoff.
      502 and 504 (idempotent): backoff. 500, 502, 503 or 504 to a write: UNKNOWN. Any other status (any other
      4xx, 501, 505...): fail, for every method: the server refused the request and applied nothing.
    - DELETE 404 after a lost attempt: DONE.
    """
    delay = _wait(policy, attempt, rng)
    if isinstance(delay, Verdict):
        return Decision(delay)
    if attempt.number >= policy.max_attempts or attempt.waited + delay > policy.max_total_wait:
        return Decision(Verdict.FAIL)
    return Decision(Verdict.RETRY, delay)


def _wait(policy: RetryPolicy, attempt: Attempt, rng: random.Random | None) -> float | Verdict:
    """The wait before a retry the failure allows (the budget aside), or the verdict when it allows none."""
    idempotent = attempt.idempotent
    if attempt.failure is Failure.UNTRUSTED:
        return Verdict.FAIL
    if attempt.failure is Failure.NOT_SENT:
        return policy.backoff(attempt.number, rng)
    if attempt.failure in (Failure.LOST, Failure.LATE):
        if not idempotent:
            return Verdict.UNKNOWN
        return policy.backoff(attempt.number, rng) if attempt.failure is Failure.LOST else Verdict.FAIL
    status = attempt.status
    if status is None:
        raise ValueError("an Attempt has a failure or a status")
    if attempt.method == "DELETE" and status == 404 and attempt.lost_before:
        return Verdict.DONE
    if status == 429 or (idempotent and status in RETRY_AFTER_STATUSES):
        return attempt.retry_after if attempt.retry_after is not None else policy.backoff(attempt.number, rng)
    if idempotent and status in TRANSIENT_STATUSES:
        return policy.backoff(attempt.number, rng)
    if not idempotent and status in UNKNOWN_OUTCOME_STATUSES:
        return Verdict.UNKNOWN
    return Verdict.FAIL


def refused_for_the_run(status: int, scim_type: str | None = None, detail: str | None = None) -> bool:
    """True when an error answer says the target does not implement what was asked: 501, 405, or a 400 whose
    ``scimType`` is ``mutability`` or whose detail says "not implemented" / "not supported". The same request sent
    again in a later round of the run would be refused again. Other refusals (a 400 ``invalidValue``, 404, 409,
    412, 429...) may depend on other objects or on time, and a later round may succeed."""
    if status in (405, 501):
        return True
    text = (detail or "").lower()
    return status == 400 and (scim_type == "mutability" or any(words in text for words in NOT_IMPLEMENTED))
