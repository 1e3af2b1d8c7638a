"""The retry decision on its own: method, what went wrong, attempt, wait so far, Retry-After -> what to do.

The no-duplicates rule is here: a request that is not idempotent and that reached the server is never sent again
once its answer was lost.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from reconciler.scim.retry import Attempt, Decision, Failure, RetryPolicy, Verdict, decide, refused_for_the_run

POLICY = RetryPolicy(max_attempts=4, max_total_wait=30.0, base_delay=0.5, max_delay=4.0)
WRITES = ("POST", "PATCH")
READS = ("GET", "HEAD", "PUT", "DELETE")


def verdict(method: str, **seen: Any) -> Verdict:
    return decide(POLICY, Attempt(method, 1, **seen)).verdict


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("seen", [{"failure": Failure.LOST}, {"failure": Failure.LATE}, {"status": 500},
                                  {"status": 502}, {"status": 503}, {"status": 504}])
def test_a_write_whose_answer_was_lost_is_never_resent(method: str, seen: dict[str, Any]) -> None:
    assert verdict(method, **seen) is Verdict.UNKNOWN
    assert verdict(method, retry_after=1.0, **seen) is Verdict.UNKNOWN


@pytest.mark.parametrize("method", WRITES + READS)
def test_a_request_that_was_not_sent_is_retried_with_backoff(method: str) -> None:
    decision = decide(POLICY, Attempt(method, 2, failure=Failure.NOT_SENT), random.Random(7))
    assert decision.verdict is Verdict.RETRY
    assert 0 <= decision.delay <= 1.0  # full jitter up to base_delay * 2 ** (attempt - 1)
    assert decision == decide(POLICY, Attempt(method, 2, failure=Failure.NOT_SENT), random.Random(7))


@pytest.mark.parametrize("method", WRITES + READS)
def test_an_untrusted_certificate_is_not_retried(method: str) -> None:
    assert verdict(method, failure=Failure.UNTRUSTED) is Verdict.FAIL


@pytest.mark.parametrize("method", READS)
def test_an_idempotent_request_is_retried_when_lost_but_not_when_late(method: str) -> None:
    assert verdict(method, failure=Failure.LOST) is Verdict.RETRY
    assert verdict(method, failure=Failure.LATE) is Verdict.FAIL  # a trickling server costs one deadline


@pytest.mark.parametrize("method", WRITES + READS)
def test_429_waits_for_retry_after_whatever_the_method(method: str) -> None:
    assert decide(POLICY, Attempt(method, 1, status=429, retry_after=7.0)) == Decision(Verdict.RETRY, 7.0)
    assert verdict(method, status=429) is Verdict.RETRY  # no Retry-After: backoff


@pytest.mark.parametrize("method", READS)
def test_an_idempotent_request_waits_out_503_and_backs_off_on_502_and_504(method: str) -> None:
    assert decide(POLICY, Attempt(method, 1, status=503, retry_after=2.0)) == Decision(Verdict.RETRY, 2.0)
    for status in (502, 504):
        decision = decide(POLICY, Attempt(method, 1, status=status, retry_after=9.0))
        assert decision.verdict is Verdict.RETRY and decision.delay <= 0.5  # Retry-After is for 429 and 503


@pytest.mark.parametrize("method", READS)
def test_other_server_errors_of_an_idempotent_request_fail(method: str) -> None:
    assert verdict(method, status=500) is Verdict.FAIL
    assert verdict(method, status=501) is Verdict.FAIL


@pytest.mark.parametrize("method", WRITES + READS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412])
def test_client_errors_fail_at_once(method: str, status: int) -> None:
    assert verdict(method, status=status) is Verdict.FAIL


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("status", [501, 505, 507])
def test_a_write_refused_as_not_implemented_is_a_definite_no_not_a_lost_answer(method: str, status: int) -> None:
    assert verdict(method, status=status) is Verdict.FAIL
    assert verdict(method, status=status, retry_after=1.0) is Verdict.FAIL


def test_only_what_the_target_does_not_implement_is_refused_for_the_whole_run() -> None:
    assert refused_for_the_run(501) and refused_for_the_run(405)
    assert refused_for_the_run(400, "mutability")
    assert refused_for_the_run(400, None, "PATCH replace is Not Implemented for displayName")
    # a refusal of the data, or one that depends on other objects or on time, may pass in a later round
    assert not refused_for_the_run(400, "invalidValue", "nickName is reserved")
    assert not any(refused_for_the_run(status) for status in (401, 403, 404, 409, 412, 429, 500, 502, 503, 504))


def test_a_delete_that_finds_nothing_after_a_lost_attempt_is_done() -> None:
    assert verdict("DELETE", status=404, lost_before=True) is Verdict.DONE
    assert verdict("DELETE", status=404) is Verdict.FAIL
    assert verdict("GET", status=404, lost_before=True) is Verdict.FAIL


def test_the_attempts_bound_every_retry() -> None:
    assert decide(POLICY, Attempt("GET", 3, status=429, retry_after=1.0)).verdict is Verdict.RETRY
    assert decide(POLICY, Attempt("GET", 4, status=429, retry_after=1.0)).verdict is Verdict.FAIL
    assert decide(POLICY, Attempt("GET", 4, failure=Failure.NOT_SENT)).verdict is Verdict.FAIL


def test_the_total_wait_bounds_every_retry_retry_after_included() -> None:
    assert decide(POLICY, Attempt("GET", 1, waited=20.0, status=503, retry_after=10.0)) == Decision(Verdict.RETRY,
                                                                                                   10.0)
    assert decide(POLICY, Attempt("GET", 1, waited=20.0, status=503, retry_after=10.5)).verdict is Verdict.FAIL
    assert decide(POLICY, Attempt("POST", 1, status=429, retry_after=31.0)).verdict is Verdict.FAIL


def test_no_attempts_allowed_means_the_first_failure_is_final() -> None:
    assert decide(RetryPolicy(max_attempts=0), Attempt("GET", 1, status=503)).verdict is Verdict.FAIL
    assert decide(RetryPolicy(max_attempts=1), Attempt("GET", 1, failure=Failure.NOT_SENT)).verdict is Verdict.FAIL


def test_an_attempt_names_what_went_wrong() -> None:
    with pytest.raises(ValueError, match="a failure or a status"):
        decide(POLICY, Attempt("GET", 1))
