"""The error catalogue: every error a user can meet is a ReconcilerError (printed as one line), SCIM request
errors are TargetErrors, and a stop is not an error at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler import errors
from reconciler.cli import main
from reconciler.plan import PLAN_FORMAT, Plan
from reconciler.scim import errors as scim_errors
from tests.reconcile_helpers import ROOT

USER_ERRORS = [errors.ManifestError, errors.DirectoryError, errors.TargetError, errors.ExpressionError,
               errors.ExpressionSyntaxError, errors.EvaluationError, errors.NoMatchingValue, errors.PlanFormatError,
               errors.DeletionGuardTripped, errors.LockBusy, errors.BaseUnavailable, scim_errors.PathError]
REQUEST_ERRORS = [scim_errors.TargetUnreachable, scim_errors.TargetStatusError, scim_errors.TargetResponseError,
                  scim_errors.ResponseTooLarge, scim_errors.OutcomeUnknown, scim_errors.BulkOutcomeUnknown]


@pytest.mark.parametrize("error", USER_ERRORS + REQUEST_ERRORS, ids=lambda e: e.__name__)
def test_every_error_a_user_can_meet_is_a_reconciler_error(error: type[Exception]) -> None:
    assert issubclass(error, errors.ReconcilerError)


@pytest.mark.parametrize("error", REQUEST_ERRORS, ids=lambda e: e.__name__)
def test_every_request_error_is_a_target_error(error: type[Exception]) -> None:
    assert issubclass(error, scim_errors.ScimRequestError) and issubclass(error, errors.TargetError)


def test_a_path_error_is_also_a_bad_value_and_keeps_its_column() -> None:
    error = scim_errors.PathError("malformed", column=4)
    assert isinstance(error, ValueError) and not isinstance(error, errors.TargetError)
    assert (str(error), error.column) == ("malformed", 4)


def test_a_stop_is_not_an_error_any_handler_of_errors_would_take() -> None:
    assert not issubclass(errors.Stopping, errors.ReconcilerError)


def test_the_deletion_guard_names_the_app_the_count_and_the_threshold() -> None:
    assert str(errors.DeletionGuardTripped("atea", 8, 2)) == (
        "atea: deletion guard: 8 disables/deletes exceed deletionThreshold 2; nothing was applied (review the "
        "plan, then re-run with --allow-deletes)")


def test_a_plan_in_another_format_is_a_plan_format_error() -> None:
    with pytest.raises(errors.PlanFormatError, match=rf"^unsupported plan format 99 \(expected {PLAN_FORMAT}\)$"):
        Plan.from_dict({"format": 99, "app": "atea"})


def test_apply_refuses_a_plan_in_another_format_in_one_line(url: str, tmp_path: Path, capsys: Any) -> None:
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps({"apps": [{"name": "atea", "format": 99}]}))
    code = main(["apply", str(ROOT / "manifests" / "atea.yaml"), "--plan", str(saved), "--target", url])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"{saved}: not a plan saved by 'reconciler plan --out' (unsupported plan format 99 "
                   f"(expected {PLAN_FORMAT}))\n")
