"""``reconciler import (--service-principal ID | --from DIR) [--out FILE] [--stack-imports FILE]``: an existing
Entra app as a manifest.

The app's configuration is read from Microsoft Graph (``--service-principal``: the service principal, its
application, ``appRoleAssignedTo``, the synchronization jobs, the first job's schema, the secrets and the
application's owners) or from those responses saved as files (``--from DIR``, see :data:`FILES`), converted by
:mod:`reconciler.entra.imported`, checked as ``reconciler validate`` checks a file, and written as YAML with the
schema modeline to ``--out`` (never over an existing file unless ``--force``) or stdout. The report, one line per
thing the manifest cannot express, goes to stderr. The SecretToken is never read into the manifest or the report;
its value is registered as a secret, so no output can carry it either.

``--stack-imports FILE`` also writes a shell script of ``pulumi config set --path imports.APP.NAME ID`` commands,
one per object found that the manifest declares, so that the first ``pulumi up`` adopts the existing objects
(Pulumi's ``import`` resource option, :mod:`reconciler.azure.program`) instead of creating a second app.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from reconciler.azure.ids import assignment_names
from reconciler.entra.imported import (
    GraphApp,
    Imported,
    ImportFailure,
    ImportOptions,
    Loc,
    import_app,
    one_line,
    stack_imports,
)
from reconciler.manifest import load_text
from reconciler.manifest.model import GRAPH_ENDPOINT
from reconciler.outputs import write_private
from reconciler.policy.rules import SECRET_TOKEN_KEY
from reconciler.secrets import register_secret
from reconciler.validation import validate_paths

MAX_FILE_BYTES = 16 * 1024 * 1024
SCHEMA_FILE = "manifest.schema.json"
DEFAULT_SCHEMA_REF = f"../{SCHEMA_FILE}"  # a manifest in manifests/, the schema at the repository's root
# part -> (file name, required, what it holds)
FILES: dict[str, tuple[str, bool, str]] = {
    "application": ("application.json", True, "GET /applications/{id}"),
    "servicePrincipal": ("servicePrincipal.json", True, "GET /servicePrincipals/{id}"),
    "appRoleAssignedTo": ("appRoleAssignedTo.json", True, "GET /servicePrincipals/{id}/appRoleAssignedTo"),
    "jobs": ("synchronizationJobs.json", True, "GET /servicePrincipals/{id}/synchronization/jobs"),
    "schema": ("schema.json", True, "GET /servicePrincipals/{id}/synchronization/jobs/{jobId}/schema"),
    "secrets": ("secrets.json", False, "GET /servicePrincipals/{id}/synchronization/secrets"),
    "owners": ("owners.json", False, "GET /applications/{id}/owners"),
}
LISTS = frozenset({"appRoleAssignedTo", "jobs", "secrets", "owners"})  # saved as {"value": [...]}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# keys whose list items are written one flow mapping a line, as the project's manifests are
# strings quoted whatever the emitter thinks: inside a flow mapping a ':' or ',' would end the value for some loaders
_RISKY = re.compile(r"[:#{}\[\],]|^[&*!|>'\"%@`?-]|^\s|\s$")
_FLOW_ITEMS = frozenset({"roles", "assignments", "mappings"})


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import", help="write an existing Entra app's configuration as a manifest",
        description="Read an app's registration, roles, assignments, owners and provisioning job from Microsoft "
                    "Graph (--service-principal) or from saved Graph responses (--from DIR: application.json, "
                    "servicePrincipal.json, appRoleAssignedTo.json, synchronizationJobs.json, schema.json, and "
                    "optionally secrets.json and owners.json), and write a manifest with engine: entra. What a "
                    "manifest cannot express is reported on stderr, one line each.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--service-principal", metavar="ID", help="the service principal's object id")
    source.add_argument("--from", dest="from_dir", metavar="DIR", help="a folder of saved Graph responses")
    parser.add_argument("--out", metavar="FILE", help="the manifest to write (default: stdout)")
    parser.add_argument("--stack-imports", metavar="FILE",
                        help="also write a shell script of 'pulumi config set --path imports...' commands, so "
                             "that the first 'pulumi up' adopts the existing objects instead of creating them")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out or --stack-imports file")
    parser.add_argument("--name", help="the manifest name (default: made from the displayName)")
    parser.add_argument("--token-env", metavar="NAME",
                        help="the variable holding the SCIM token (default: <NAME>_SCIM_TOKEN)")
    parser.add_argument("--notification-email", metavar="EMAIL",
                        help="the notification email, when the service principal has none")
    parser.add_argument("--target-url", metavar="URL", help="the SCIM URL, when the secrets hold no usable "
                                                            "BaseAddress")
    parser.add_argument("--owner", action="append", default=[], metavar="UPN",
                        help="an owner to add (repeatable), e.g. when the application has none")
    parser.add_argument("--graph-endpoint", default=GRAPH_ENDPOINT, metavar="URL",
                        help=f"the Microsoft Graph origin (default: {GRAPH_ENDPOINT})")
    parser.add_argument("--graph-token-env", metavar="NAME",
                        help="a variable holding a Graph access token (default: the Azure credential chain)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for path in (args.out, args.stack_imports):
        if path and os.path.lexists(path) and not args.force:
            raise ImportFailure(f"{path}: already exists; pass --force to overwrite it")
    app = read_folder(args.from_dir) if args.from_dir else read_graph(
        args.service_principal, args.graph_endpoint, args.graph_token_env)
    options = ImportOptions(token_env=args.token_env, notification_email=args.notification_email,
                            target_url=args.target_url, name=args.name, owners=tuple(args.owner))
    imported = import_app(app, options)
    text = render(imported, schema_ref(args.out))
    check(text)
    script = imports_script(imported, app, text) if args.stack_imports else None
    if args.out:
        write_private(args.out, text)
    else:
        sys.stdout.write(text)
    if script is not None:
        write_private(args.stack_imports, script)
    for line in imported.report:
        print(f"not expressed: {line}", file=sys.stderr)
    where = args.out or "stdout"
    print(f"imported {imported.manifest['name']} to {where} ({len(imported.report)} report line(s))",
          file=sys.stderr)
    if args.stack_imports:
        print(f"note: the stack imports are in {args.stack_imports}; run it with sh before the first pulumi up",
              file=sys.stderr)
    return 0


# -- reading -------------------------------------------------------------------------------------------------------


def read_folder(folder: str) -> GraphApp:
    """The saved Graph responses in ``folder``; a missing required file, non-JSON or a wrong shape is one line."""
    if not os.path.isdir(folder):
        raise ImportFailure(f"{folder}: not a directory of saved Graph responses")
    parts: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for part, (name, required, request) in FILES.items():
        path = os.path.join(folder, name)
        origin[part] = path
        if not os.path.exists(path):
            if required:
                raise ImportFailure(f"{path}: missing (the answer to {request}, saved as returned)")
            parts[part] = None
            continue
        parts[part] = _shaped(path, part, _read_json(path))
    return _app(parts, origin)


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ImportFailure(f"{path}: cannot read: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ImportFailure(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not a Graph response")
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportFailure(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ImportFailure(f"{path}: not JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise ImportFailure(f"{path}: JSON nested too deep") from None


def _shaped(where: str, part: str, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ImportFailure(f"{where}: expected a JSON object (the Graph response as returned)")
    if part not in LISTS:
        return data
    items = data.get("value")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ImportFailure(f"{where}: expected {{\"value\": [...]}} with a list of objects")
    return items


def _app(parts: dict[str, Any], origin: dict[str, str]) -> GraphApp:
    for pair in parts.get("secrets") or []:
        if str(pair.get("key", "")).lower() == SECRET_TOKEN_KEY.lower() and isinstance(pair.get("value"), str):
            register_secret(pair["value"])
    return GraphApp(application=parts["application"], service_principal=parts["servicePrincipal"],
                    assignments=parts["appRoleAssignedTo"], jobs=parts["jobs"], schema=parts["schema"],
                    secrets=parts["secrets"], owners=parts["owners"], origin=origin)


def read_graph(service_principal: str, endpoint: str, token_env: str | None) -> GraphApp:
    """The same responses, read from Microsoft Graph."""
    from reconciler.entra.graphapi import GraphApiError, GraphClient, segment

    if not _GUID.match(service_principal):
        raise ImportFailure(f"--service-principal {one_line(service_principal)!r} is not an object id")
    base = f"/servicePrincipals/{segment(service_principal)}"
    parts: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def shown(path: str) -> str:
        return f"Microsoft Graph: GET /v1.0{path}"

    with GraphClient(endpoint, token_env=token_env) as graph:
        def one(part: str, path: str) -> None:
            origin[part] = shown(path)
            parts[part] = _shaped(origin[part], part, graph.get(path))

        def listed(part: str, path: str) -> None:
            origin[part] = shown(path)
            parts[part] = graph.get_all(path)

        one("servicePrincipal", base)
        app_id = parts["servicePrincipal"].get("appId")
        if not isinstance(app_id, str) or not _GUID.match(app_id):
            raise ImportFailure(f"{origin['servicePrincipal']}: the service principal has no appId")
        one("application", f"/applications(appId='{app_id}')")
        application_id = parts["application"].get("id")
        if not isinstance(application_id, str) or not application_id:
            raise ImportFailure(f"{origin['application']}: the application has no id")
        listed("appRoleAssignedTo", f"{base}/appRoleAssignedTo")
        listed("jobs", f"{base}/synchronization/jobs")
        job_id = parts["jobs"][0].get("id") if parts["jobs"] else None
        if isinstance(job_id, str) and job_id:
            one("schema", f"{base}/synchronization/jobs/{segment(job_id)}/schema")
        else:
            parts["schema"], origin["schema"] = {}, shown(f"{base}/synchronization/jobs")
        try:
            listed("secrets", f"{base}/synchronization/secrets")
        except GraphApiError as error:
            if error.status != 404:
                raise
            parts["secrets"] = None  # no secrets saved yet: the target URL must come from --target-url
        listed("owners", f"/applications/{segment(application_id)}/owners")
    return _app(parts, origin)


# -- writing -------------------------------------------------------------------------------------------------------


def schema_ref(out: str | None) -> str:
    """The modeline's schema: the nearest ``manifest.schema.json`` above the file written, relative to it."""
    if out is None:
        return DEFAULT_SCHEMA_REF
    folder = Path(out).resolve().parent
    for candidate in (folder, *folder.parents):
        schema = candidate / SCHEMA_FILE
        if schema.is_file():
            return Path(os.path.relpath(schema, folder)).as_posix()
    return DEFAULT_SCHEMA_REF


def render(imported: Imported, schema: str = DEFAULT_SCHEMA_REF) -> str:
    """The manifest as YAML: the schema modeline first, then the keys in the manifest's order."""
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = _commented(imported.manifest, (), imported.comments)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return f"# yaml-language-server: $schema={schema}\n{buffer.getvalue()}"


def _commented(value: Any, loc: Loc, comments: dict[Loc, str]) -> Any:
    if isinstance(value, dict):
        mapping = CommentedMap()
        for key, item in value.items():
            mapping[key] = _commented(item, (*loc, key), comments)
        if _flow_item(loc):
            mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        sequence = CommentedSeq(_commented(item, (*loc, i), comments) for i, item in enumerate(value))
        commented = any((*loc, index) in comments for index in range(len(value)))
        if loc and loc[-1] in ("owners", "actions", "filterableAttributes") and not commented:
            sequence.fa.set_flow_style()
        for index in range(len(value)):
            comment = comments.get((*loc, index))
            if comment:
                sequence.yaml_add_eol_comment(f"# {one_line(comment)}", index)
        return sequence
    if isinstance(value, str) and _RISKY.search(value):
        return SingleQuotedScalarString(value)
    return value


def _flow_item(loc: Loc) -> bool:
    """A role, an assignment, a mapping or a scoping clause: one flow mapping a line."""
    if len(loc) >= 2 and isinstance(loc[-1], int) and loc[-2] in _FLOW_ITEMS:
        return True
    return len(loc) >= 3 and loc[-3] == "scopingFilters"


def imports_script(imported: Imported, app: GraphApp, text: str) -> str:
    """The ``pulumi config set --path`` commands that name, for the written manifest ``text``, each existing object
    its first ``pulumi up`` adopts."""
    manifest = load_text(text, "imported.yaml").manifest
    ids = stack_imports(imported, app, assignment_names(manifest.name, manifest.assignments))
    lines = [
        "#!/bin/sh",
        f"# Written by reconciler import: the existing Entra objects of app {manifest.name} that the stack adopts",
        "# (stack config imports.APP.LOGICAL_NAME = the import id). Run it in the Pulumi project, on the stack that",
        f"# will hold the app; then pulumi preview, pulumi up, and pulumi config rm --path imports.{manifest.name}",
        "set -e",
    ]
    lines += [f"pulumi config set --path {shlex.quote(f'imports.{manifest.name}.{logical}')} {shlex.quote(value)}"
              for logical, value in ids.items()]
    return "\n".join(lines) + "\n"


def check(text: str) -> None:
    """Refuse to write a manifest that ``validate`` would reject: its first error, one line."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "imported.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        _, problems = validate_paths([path])
    errors = [p for p in problems if p.is_error]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ImportFailure(f"the imported manifest would not validate: line {first.line}: {first.message}{more}")
