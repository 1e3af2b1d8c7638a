"""``validate``'s policy check: the rules of :mod:`reconciler.policy.rules` applied to a loaded manifest, each
problem pointing at the offending key or value.

Some rules cannot fail on a manifest that loaded at all (a notification email and a deletion threshold are required
keys; Default Access assignments are refused by the loader); they are still checked here, so the rule and its
message stay the same wherever it runs. ``assignment-required-when-scope-assigned`` is about what the Pulumi
component declares from ``scope`` and is checked on the resources only.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.errors import Problem
from reconciler.manifest import LoadedManifest
from reconciler.manifest.positions import Loc
from reconciler.policy import rules
from reconciler.policy.rules import Rule


def policy_problems(loaded: LoadedManifest) -> list[Problem]:
    """Every policy problem of one manifest; advisory rules come out as warnings."""
    manifest = loaded.manifest
    provisioning = manifest.provisioning
    found: list[tuple[Rule, Loc, str, bool]] = []

    def add(rule: Rule, loc: Loc, message: str | None, key: bool = False) -> None:
        if message:
            found.append((rule, loc, message, key))

    for index, assignment in enumerate(manifest.assignments):
        add(rules.NO_DEFAULT_ACCESS, ("assignments", index, "role"), rules.default_access(assignment.role))
    add(rules.NOTIFICATION_EMAIL, ("notificationEmail",), rules.notification_email([manifest.notification_email]))
    owners = rules.owners(manifest.owners)
    if ("owners",) in loaded.source.positions:
        add(rules.OWNERS, ("owners",), owners, key=True)
    else:
        add(rules.OWNERS, (), owners and f"owners: {owners}")
    add(rules.SECRET_TOKEN, ("provisioning", "target", "tokenEnv"),
        rules.token_env_name(provisioning.target.token_env))
    add(rules.DELETION_THRESHOLD, ("provisioning", "deletionThreshold"),
        rules.deletion_threshold(provisioning.deletion_threshold))
    add(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, ("provisioning", "scope"),
        rules.assigned_scope_has_assignments(provisioning.scope, len(manifest.assignments)))

    kinds = [("users", provisioning.users.mappings)]
    if provisioning.groups.enabled:
        kinds.append(("groups", provisioning.groups.mappings))
    for kind, mappings in kinds:
        matching = [(i, m) for i, m in enumerate(mappings) if m.matching is not None]
        for position, message in rules.matching_filterable([m.target for _, m in matching],
                                                           provisioning.filterable_attributes):
            index = matching[position][0]
            add(rules.MATCHING_FILTERABLE, ("provisioning", kind, "mappings", index, "target"), message)

    problems = []
    for rule, loc, message, key in found:
        problem = loaded.problem(loc, f"{message} [{rule.name}]", key=key)
        problems.append(problem if rule.mandatory else replace(problem, severity="warning"))
    return problems
