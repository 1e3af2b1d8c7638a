"""The policy rules as CrossGuard policies: one policy per rule, for the pack in ``policies/``.

Building a ``PolicyPack`` starts a gRPC server and blocks, so only ``policies/__main__.py`` builds one; this module
only declares the policies, which tests call directly (``policy.validate(args, report_violation)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from reconciler.policy.resources import RESOURCE_CHECKS, STACK_CHECKS, ResourceCheck, StackCheck, Subject
from reconciler.policy.rules import Rule

PACK_NAME = "reconciler-entra-apps"


def _level(rule: Rule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY


def _parent_name(urn: str | None) -> str | None:
    return urn.rsplit("::", 1)[-1] if urn else None


def resource_subject(args: ResourceValidationArgs) -> Subject:
    return Subject(args.resource_type, args.name, _props(args.props), _parent_name(args.opts.parent),
                   tuple(args.opts.additional_secret_outputs or ()))


def stack_subject(resource: PolicyResource) -> Subject:
    parent = resource.parent.name if resource.parent is not None else None
    return Subject(resource.resource_type, resource.name, _props(resource.props), parent,
                   tuple(resource.opts.additional_secret_outputs or ()))


def _props(props: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return props if props is not None else {}


def _resource_policy(check: ResourceCheck) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in check.types:
            return
        for message in check.check(resource_subject(args)):
            report_violation(message, None)

    return ResourceValidationPolicy(check.rule.name, check.rule.description, validate, _level(check.rule))


def _stack_policy(check: StackCheck) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        subjects = [stack_subject(r) for r in args.resources]
        urns = {id(s): r.urn for s, r in zip(subjects, args.resources, strict=True)}
        for subject, message in check.check(subjects):
            report_violation(message, urns.get(id(subject)))

    return StackValidationPolicy(check.rule.name, check.rule.description, validate, _level(check.rule))


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    *(_resource_policy(c) for c in RESOURCE_CHECKS),
    *(_stack_policy(c) for c in STACK_CHECKS),
]
