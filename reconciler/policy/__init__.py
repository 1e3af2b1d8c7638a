"""Policy rules shared by ``reconciler validate`` (on manifests) and the CrossGuard pack (on declared resources).

:mod:`~reconciler.policy.rules` holds the rules as plain functions; :mod:`~reconciler.policy.resources` applies them
to resources (``reconciler validate`` applies them to manifests, in :mod:`reconciler.validation.policy`);
:mod:`~reconciler.policy.crossguard` wraps them as CrossGuard policies (imported only by the pack and its tests).
"""

from reconciler.policy.resources import Subject, Violation, check_resource, check_stack
from reconciler.policy.rules import RULES, Enforcement, Rule

__all__ = ["RULES", "Enforcement", "Rule", "Subject", "Violation", "check_resource", "check_stack"]
