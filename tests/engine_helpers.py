"""Shared helpers for the mapping-engine tests: evaluate an expression, build small manifests and directories."""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime
from typing import Any

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.expressions import Context, compile_expression, to_json
from reconciler.manifest import LoadedManifest, load_text

FIXED_NOW = datetime(2021, 7, 2, 15, 33, 38, tzinfo=UTC)


def run(expression: str, **attributes: Any) -> Any:
    """The JSON value of ``expression`` for an object with ``attributes`` (a fixed clock and seeded randomness)."""
    context = Context(attributes=attributes.get, clock=lambda: FIXED_NOW, random=random.Random(7))
    return to_json(compile_expression(expression).evaluate(context))


def user(object_id: str, upn: str, **data: Any) -> DirectoryUser:
    return DirectoryUser(object_id, {"id": object_id, "userPrincipalName": upn, "accountEnabled": True, **data})


def group(object_id: str, name: str, members: tuple[str, ...] = ()) -> DirectoryGroup:
    return DirectoryGroup(object_id, {"id": object_id, "displayName": name}, members)


def directory(*objects: DirectoryUser | DirectoryGroup) -> Directory:
    return Directory(tuple(o for o in objects if isinstance(o, DirectoryUser)),
                     tuple(o for o in objects if isinstance(o, DirectoryGroup)), "test directory")


def manifest(provisioning: str, assignments: str = "", file: str = "test.yaml") -> LoadedManifest:
    """A valid manifest around a ``provisioning.users`` (and more) block given as YAML text."""
    text = textwrap.dedent("""\
        apiVersion: reconciler/v1
        kind: EnterpriseApp
        name: test
        displayName: Test
        notificationEmail: iam@contoso.com
        owners: [owner@contoso.com]
        roles:
          - {value: User, displayName: User}
          - {value: Admin, displayName: Administrator}
        """)
    text += "assignments:\n" + textwrap.indent(textwrap.dedent(assignments), "  ") if assignments else ""
    text += "provisioning:\n  target: {url: 'https://scim.example.com/v2', tokenEnv: TOKEN}\n  deletionThreshold: 100\n"
    text += textwrap.indent(textwrap.dedent(provisioning), "  ")
    return load_text(text, file)
