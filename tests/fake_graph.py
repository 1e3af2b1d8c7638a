"""A small fake Microsoft Graph v1.0 on loopback, for tests and benchmarks of the directory readers.

``fake_graph(token)`` serves it over real HTTP (a threaded ``http.server`` on 127.0.0.1) and yields a
:class:`FakeGraph`: ``.endpoint`` is its origin (the readers append ``/v1.0``), and its methods change the tenant
as an administrator would. Every request needs ``Authorization: Bearer <token>``. Served, with Graph's shapes:

- ``GET /v1.0/users``, ``/v1.0/groups``: ``$select`` (unset properties as null), ``$top`` (at most
  ``page_size``), ``$expand=manager...`` on users, paged with ``@odata.nextLink``;
- ``GET /v1.0/groups/{id}/members/microsoft.graph.user`` and ``.../microsoft.graph.group``;
- ``GET /v1.0/directory/deletedItems/microsoft.graph.user`` (soft-deleted users, their user principal name
  prefixed with their id without dashes, as Graph does);
- ``GET /v1.0/users/delta``, ``/v1.0/groups/delta``: without a token the initial round (every object; groups with
  ``members@delta`` when ``members`` is selected), ``$deltatoken=latest`` only a delta link, and with a link's
  token the objects changed since (a changed user or group with its selected properties that are set, a user
  removed with ``@removed`` reason ``"changed"`` when soft-deleted or ``"deleted"`` when purged, member changes
  with ``@removed`` for removals), in pages of ``delta_page_size`` items and ``delta_members`` members per item
  (a group with more changes recurs on the next items). The query of the first request lives in the tokens, as
  Graph keeps it; links use ``link_origin`` (the endpoint unless a test points them elsewhere).

Each change is logged with a sequence number and a token is a position in the log, so a delta round costs what
changed, not what exists (the fake holds 100,000 users for benchmarks). ``expire_links()`` makes every issued
token answer ``410 Gone`` with ``resyncRequired``; ``throttle(n, retry_after)`` answers the next ``n`` requests
``429`` with ``Retry-After``; ``counts`` counts requests per path, ``queries`` records each one's path and query.

Applications and Entra's provisioning jobs, for the Pulumi schema provider and ``reconciler import`` (seeded with
``add_application``, ``add_owner``, ``add_assignment``, ``add_job``, ``set_secrets``, ``add_template``):

- ``GET /v1.0/applications/{id}``, ``.../owners``; ``GET /v1.0/servicePrincipals/{id}``, ``.../appRoleAssignedTo``;
- ``GET``/``POST /v1.0/servicePrincipals/{id}/synchronization/jobs`` (a job made from the service principal's
  template of that id, or from :data:`SCIM_TEMPLATE_SCHEMA` for ``"scim"``), ``GET``/``DELETE .../jobs/{jobId}``,
  ``POST .../start`` and ``.../pause`` (the job's ``schedule.state`` becomes ``Active`` / ``Paused``),
  ``GET``/``PUT .../jobs/{jobId}/schema`` (a PUT replaces it and bumps its ``version``; ``schema_puts`` keeps
  each body), ``GET .../synchronization/templates``, ``GET``/``PUT .../synchronization/secrets`` (a PUT replaces
  the keys it gives; a GET hides the SecretToken's value as :data:`HIDDEN_SECRET`, as Graph does);
- ``POST /v1.0/applicationTemplates/{id}/instantiate`` (an application and its service principal; the non-gallery
  template's comes with the ``scim`` synchronization template).

Writes carry JSON bodies (at most ``MAX_BODY`` bytes). ``calls`` counts requests per method and path, ``writes``
records each write's method, path and body, and ``fail(method, path, status, ...)`` answers the next requests to
that method and path with a given status and body (a dict, or bytes that are not JSON).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser

TOKEN = "fake-graph-token-7c1d93"
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
MEMBERS_PREFIX = "/v1.0/groups/"
CASTS = {"microsoft.graph.user": "user", "microsoft.graph.group": "group"}

NON_GALLERY_TEMPLATE_ID = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
HIDDEN_SECRET = "*"              # what a GET of synchronization/secrets shows of the SecretToken
MAX_BODY = 4 * 1024 * 1024

Reply = tuple[int, dict[str, Any] | bytes | None, dict[str, str]]


class FakeGraph:
    """The tenant's users, groups and memberships, and the change log that delta rounds read."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.endpoint = ""
        self.link_origin: str | None = None
        self.page_size = 999
        self.delta_page_size = 200
        self.delta_members = 100
        self.counts: Counter[str] = Counter()
        self.queries: list[tuple[str, dict[str, str]]] = []    # every request's path and query
        self.lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._deleted: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, dict[str, str]] = {}       # group id -> member id -> "user" | "group"
        self._left: dict[str, list[str]] = {}               # soft-deleted user -> the groups it leaves
        self._former_manager: dict[str, str] = {}
        self._log: list[tuple[str, ...]] = []               # ("user", id) | ("group", id) | ("member", g, m, kind)
        self._epoch = 0
        self._throttled = 0
        self._retry_after = "1"
        self._pages: dict[str, tuple[list[dict[str, Any]], str | None]] = {}   # paging state: items, delta token
        self._serial = itertools.count(1)
        # applications and provisioning jobs
        self.calls: Counter[tuple[str, str]] = Counter()                 # (method, path) -> requests
        self.writes: list[tuple[str, str, Any]] = []                     # method, path, JSON body
        self.schema_puts: list[dict[str, Any]] = []                      # servicePrincipalId, jobId, body
        self._applications: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, list[dict[str, Any]]] = {}               # application id -> directory objects
        self._service_principals: dict[str, dict[str, Any]] = {}
        self._assignments: dict[str, list[dict[str, Any]]] = {}          # service principal id -> assignments
        self._jobs: dict[str, dict[str, dict[str, Any]]] = {}            # service principal id -> job id -> job
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}        # (service principal id, job id) -> schema
        self._secrets: dict[str, list[dict[str, str]]] = {}              # service principal id -> key/value pairs
        self._templates: dict[str, list[dict[str, Any]]] = {}            # service principal id -> templates
        self._app_templates: dict[str, str] = {NON_GALLERY_TEMPLATE_ID: "Custom"}   # id -> display name
        self._failures: list[tuple[str, str, Reply, list[int]]] = []     # method, path, answer, [times left]
        self._schema_serial = itertools.count(1)

    # -- the tenant, changed as an administrator would ------------------------------------------------------------

    def add_user(self, user_id: str, **properties: Any) -> str:
        with self.lock:
            if user_id in self._users or user_id in self._deleted:
                raise ValueError(f"user {user_id} exists")
            self._users[user_id] = {"id": user_id, "accountEnabled": True, **properties}
            self._log.append(("user", user_id))
        return user_id

    def add_users(self, records: Iterable[dict[str, Any]]) -> None:
        """Many users at once (each record has an ``id``), e.g. for a benchmark."""
        with self.lock:
            for record in records:
                self._users[record["id"]] = dict(record)
                self._log.append(("user", record["id"]))

    def update_user(self, user_id: str, **properties: Any) -> None:
        """Set properties (None clears one; ``manager`` is the manager's id)."""
        with self.lock:
            record = self._users[user_id]
            if "manager" in properties and record.get("manager") and not properties["manager"]:
                self._former_manager[user_id] = record["manager"]
            record.update(properties)
            self._log.append(("user", user_id))

    def soft_delete_user(self, user_id: str) -> None:
        """Delete a user: it moves to the deleted items (restorable) and leaves its groups."""
        with self.lock:
            self._deleted[user_id] = self._users.pop(user_id)
            self._left[user_id] = [g for g, members in self._members.items() if user_id in members]
            for group_id in self._left[user_id]:
                self._drop_member(group_id, user_id)
            self._log.append(("user", user_id))

    def restore_user(self, user_id: str) -> None:
        """Restore a soft-deleted user, with its group memberships."""
        with self.lock:
            self._users[user_id] = self._deleted.pop(user_id)
            for group_id in self._left.pop(user_id, []):
                if group_id in self._groups:
                    self.add_member(group_id, user_id)
            self._log.append(("user", user_id))

    def purge_user(self, user_id: str) -> None:
        """Delete a user permanently (from the users or the deleted items): gone everywhere."""
        with self.lock:
            if user_id in self._users:
                self.soft_delete_user(user_id)
            del self._deleted[user_id]
            self._left.pop(user_id, None)
            self._log.append(("user", user_id))

    def add_group(self, group_id: str, *, members: Iterable[str] = (), **properties: Any) -> str:
        with self.lock:
            if group_id in self._groups:
                raise ValueError(f"group {group_id} exists")
            self._groups[group_id] = {"id": group_id, **properties}
            self._members[group_id] = {}
            self._log.append(("group", group_id))
            for member in members:
                self.add_member(group_id, member)
        return group_id

    def update_group(self, group_id: str, **properties: Any) -> None:
        with self.lock:
            self._groups[group_id].update(properties)
            self._log.append(("group", group_id))

    def delete_group(self, group_id: str) -> None:
        """Delete a group (permanently): it leaves the groups it was a member of."""
        with self.lock:
            for other, members in self._members.items():
                if group_id in members and other != group_id:
                    self._drop_member(other, group_id)
            del self._groups[group_id]
            del self._members[group_id]
            self._log.append(("group", group_id))

    def add_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            kind = "user" if member_id in self._users else "group" if member_id in self._groups else None
            if kind is None:
                raise KeyError(f"{member_id} is neither a user nor a group")
            self._members[group_id][member_id] = kind
            self._log.append(("member", group_id, member_id, kind))

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            self._drop_member(group_id, member_id)

    def _drop_member(self, group_id: str, member_id: str) -> None:
        kind = self._members[group_id].pop(member_id)
        self._log.append(("member", group_id, member_id, kind))

    # -- applications and provisioning, configured as in the portal -------------------------------------------------

    def add_application(self, application: dict[str, Any], service_principal: dict[str, Any]) -> tuple[str, str]:
        """An application and its service principal (Graph's shapes; ``id`` and ``appId`` are filled in when
        missing); returns their object ids."""
        with self.lock:
            app = {"id": self._new_id(), "appId": self._new_id(), "appRoles": [], "identifierUris": [],
                   "tags": [], **copy.deepcopy(application)}
            sp = {"id": self._new_id(), "appId": app["appId"], "displayName": app.get("displayName"),
                  "servicePrincipalType": "Application", "accountEnabled": True, "appRoleAssignmentRequired": False,
                  "appRoles": copy.deepcopy(app["appRoles"]), "notificationEmailAddresses": [], "tags": [],
                  **copy.deepcopy(service_principal)}
            for record, known in ((app, self._applications), (sp, self._service_principals)):
                if record["id"] in known:
                    raise ValueError(f"{record['id']} exists")
            self._applications[app["id"]] = app
            self._owners[app["id"]] = []
            self._service_principals[sp["id"]] = sp
            self._assignments[sp["id"]] = []
            self._jobs[sp["id"]] = {}
            self._templates[sp["id"]] = []
            return app["id"], sp["id"]

    def add_owner(self, application_id: str, owner: dict[str, Any]) -> None:
        with self.lock:
            self._owners[application_id].append(copy.deepcopy(owner))

    def add_assignment(self, service_principal_id: str, assignment: dict[str, Any]) -> str:
        """An app role assignment to the service principal (``id`` and ``resourceId`` filled in when missing)."""
        with self.lock:
            record = {"id": self._new_id(), "resourceId": service_principal_id,
                      "resourceDisplayName": self._service_principals[service_principal_id].get("displayName"),
                      **copy.deepcopy(assignment)}
            self._assignments[service_principal_id].append(record)
            return str(record["id"])

    def add_template(self, service_principal_id: str, template: dict[str, Any]) -> None:
        """A synchronization template of the service principal (``{"id", "factoryTag", "schema", ...}``)."""
        with self.lock:
            record = {"applicationId": self._service_principals[service_principal_id]["appId"], "default": True,
                      "description": None, "discoverable": True, "metadata": [], **copy.deepcopy(template)}
            self._templates[service_principal_id].append(record)

    def add_application_template(self, template_id: str, display_name: str) -> None:
        """A gallery application template that ``instantiate`` accepts (its app has the ``scim`` template)."""
        with self.lock:
            self._app_templates[template_id] = display_name

    def add_job(self, service_principal_id: str, job: dict[str, Any], schema: dict[str, Any]) -> str:
        """A synchronization job with its schema as it stands (``id`` filled in from ``templateId`` when missing)."""
        with self.lock:
            record = self._job_record(str(job.get("templateId", "scim")), job)
            self._jobs[service_principal_id][record["id"]] = record
            self._schemas[(service_principal_id, record["id"])] = self._schema_record(record["id"], schema)
            return str(record["id"])

    def set_secrets(self, service_principal_id: str, secrets: list[dict[str, str]]) -> None:
        with self.lock:
            self._secrets[service_principal_id] = copy.deepcopy(secrets)

    def set_schema(self, service_principal_id: str, job_id: str, schema: dict[str, Any]) -> None:
        """Replace a job's schema as an edit in the portal would (not recorded in ``schema_puts``)."""
        with self.lock:
            self._schemas[(service_principal_id, job_id)] = self._schema_record(job_id, schema)

    def schema(self, service_principal_id: str, job_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._schemas[(service_principal_id, job_id)])

    def job(self, service_principal_id: str, job_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._jobs[service_principal_id][job_id])

    def jobs(self, service_principal_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._jobs[service_principal_id].values()))

    def secrets(self, service_principal_id: str) -> list[dict[str, str]]:
        """The secrets as stored (the SecretToken's value included, unlike a GET)."""
        with self.lock:
            return copy.deepcopy(self._secrets.get(service_principal_id, []))

    def application(self, application_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._applications[application_id])

    def service_principal(self, service_principal_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._service_principals[service_principal_id])

    def fail(self, method: str, path: str, status: int, body: dict[str, Any] | bytes | None = None, *,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests ``method path`` (``/v1.0/...``, no query) with ``status`` and
        ``body`` (default: Graph's error object) instead of serving them."""
        if body is None:
            body = {"error": {"code": "BadRequest", "message": f"Injected failure {status}"}}
        with self.lock:
            self._failures.append((method.upper(), path, (status, body, dict(headers or {})), [times]))

    def _new_id(self) -> str:
        return str(uuid.UUID(int=(0xFA4E << 112) | next(self._serial)))

    def _job_record(self, template_id: str, job: dict[str, Any]) -> dict[str, Any]:
        serial = next(self._serial)
        tenant, suffix = (hashlib.sha256(f"{part}{serial}".encode()).hexdigest()[:32] for part in ("t", "j"))
        record: dict[str, Any] = {
            "id": f"{template_id}.{tenant}.{suffix}", "templateId": template_id,
            "schedule": {"expiration": None, "interval": "PT40M", "state": "Disabled"},
            "status": {"code": "NotConfigured", "countSuccessiveCompleteFailures": 0, "escrowsPruned": False,
                       "lastExecution": None, "lastSuccessfulExecution": None, "quarantine": None,
                       "steadyStateFirstAchievedTime": "0001-01-01T00:00:00Z",
                       "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z", "synchronizedEntryCountByType": [],
                       "troubleshootingUrl": None},
            "synchronizationJobSettings": [],
        }
        record.update(copy.deepcopy(job))
        return record

    def _schema_record(self, job_id: str, schema: dict[str, Any]) -> dict[str, Any]:
        record = {k: copy.deepcopy(v) for k, v in schema.items() if not k.startswith("@odata.")}
        record["id"] = job_id
        record["version"] = f"Date:2024-05-06T10:00:00Z;SchemaVersion:{next(self._schema_serial)}"
        record.setdefault("directories", [])
        record.setdefault("synchronizationRules", [])
        return record

    # -- for tests ---------------------------------------------------------------------------------------------------

    def expire_links(self) -> None:
        """Every delta and paging token issued so far answers 410 Gone (resyncRequired) from now on."""
        with self.lock:
            self._epoch += 1

    def throttle(self, requests: int, retry_after: str = "1") -> None:
        """Answer the next ``requests`` requests 429 Too Many Requests with ``Retry-After: retry_after``."""
        with self.lock:
            self._throttled = requests
            self._retry_after = retry_after

    def directory(self) -> Directory:
        """The tenant as a full read should see it (properties as Graph returns them, the manager expanded)."""
        with self.lock:
            users = tuple(DirectoryUser(u["id"], self._full(u)) for u in self._users.values())
            groups = tuple(DirectoryGroup(g["id"], dict(g), tuple(self._members[g["id"]]))
                           for g in self._groups.values())
            deleted = tuple(DirectoryUser(u["id"], self._deleted_record(u)) for u in self._deleted.values())
        return Directory(users, groups, "Microsoft Graph", deleted)

    @staticmethod
    def _full(record: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in record.items() if k != "manager"}
        if record.get("manager"):
            data["manager"] = {"@odata.type": USER_TYPE, "id": record["manager"]}
        return data

    @staticmethod
    def _deleted_record(record: dict[str, Any]) -> dict[str, Any]:
        upn = record.get("userPrincipalName")
        return {"id": record["id"], "userPrincipalName": record["id"].replace("-", "") + upn if upn else None}

    # -- the HTTP answers ---------------------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Reply:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.counts[path] += 1
            self.calls[(method, path)] += 1
            self.queries.append((path, query))
            if self._throttled > 0:
                self._throttled -= 1
                return _error(429, "TooManyRequests", "Too many requests", {"Retry-After": self._retry_after})
            if headers.get("authorization") != f"Bearer {self.token}":
                return _error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
            injected = self._injected(method, path)
            if injected is not None:
                return injected
            data: Any = None
            if method in ("POST", "PUT", "PATCH") and body.strip():
                try:
                    data = json.loads(body)
                except ValueError:
                    return _error(400, "BadRequest", "Unable to read JSON request payload.")
            if method != "GET":
                self.writes.append((method, path, copy.deepcopy(data)))
            routed = self._route_provisioning(method, path, data, query)
            if routed is not None:
                return routed
            if method != "GET":
                return _error(405, "Request_BadRequest", f"{method} is not supported here")
            return self._route(path, query)

    def _injected(self, method: str, path: str) -> Reply | None:
        for index, (m, p, reply, left) in enumerate(self._failures):
            if m == method and p == path:
                left[0] -= 1
                if left[0] <= 0:
                    del self._failures[index]
                return reply[0], copy.deepcopy(reply[1]), dict(reply[2])
        return None

    def _route(self, path: str, query: dict[str, str]) -> Reply:
        if path in ("/v1.0/users/delta", "/v1.0/groups/delta"):
            return self._delta(path, query)
        if "$skiptoken" in query:
            return self._next_page(path, query["$skiptoken"])
        select = _select(query)
        if path == "/v1.0/users":
            expand = query.get("$expand", "").startswith("manager")
            return self._first_page(path, [self._user(u, select, expand) for u in self._users.values()], query)
        if path == "/v1.0/groups":
            return self._first_page(path, [_pick(g, select) for g in self._groups.values()], query)
        if path == "/v1.0/directory/deletedItems/microsoft.graph.user":
            return self._first_page(path, [_pick(self._deleted_record(u), select) for u in self._deleted.values()],
                                    query)
        if path.startswith(MEMBERS_PREFIX) and "/members/" in path:
            group_id, _, cast = path[len(MEMBERS_PREFIX):].partition("/members/")
            if group_id not in self._members or cast not in CASTS:
                return _error(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist.")
            kind = CASTS[cast]
            items = [{"@odata.type": f"#{cast}", "id": m} for m, k in self._members[group_id].items() if k == kind]
            return self._first_page(path, items, query)
        return _error(404, "Request_ResourceNotFound", f"Resource not found for the segment '{path}'.")

    # applications and provisioning jobs

    def _route_provisioning(self, method: str, path: str, data: Any, query: dict[str, str]) -> Reply | None:
        """The answer to an application or synchronization request, or None when ``path`` is none of theirs."""
        for pattern, methods, handler in _ROUTES:
            found = pattern.fullmatch(unquote(path) if pattern is _BY_APP_ID else path)
            if found is None:
                continue
            if method not in methods:
                return _error(405, "Request_BadRequest", f"The method {method} is not allowed on '{path}'.")
            ids = [unquote(part) for part in found.groups()]
            if pattern is _BY_APP_ID:
                ids = [next((key for key, app in self._applications.items() if app.get("appId") == ids[0]), ids[0])]
            if pattern is not _INSTANTIATE and ids[0] not in (self._applications if pattern.pattern.startswith(
                    "/v1.0/applications") else self._service_principals):
                return _missing(ids[0])
            reply: Reply = handler(self, method, ids, data, query)
            return reply
        return None

    def _get_application(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        return 200, {"@odata.context": self._context("applications/$entity"), **self._applications[ids[0]]}, {}

    def _get_owners(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        return 200, {"@odata.context": self._context("directoryObjects"), "value": self._owners[ids[0]]}, {}

    def _get_service_principal(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        return 200, {"@odata.context": self._context("servicePrincipals/$entity"),
                     **self._service_principals[ids[0]]}, {}

    def _get_assignments(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        path = f"/v1.0/servicePrincipals/{ids[0]}/appRoleAssignedTo"
        if "$skiptoken" in query:
            return self._next_page(path, query["$skiptoken"])
        return self._first_page(path, copy.deepcopy(self._assignments[ids[0]]), query)

    def _job_collection(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        sp_id = ids[0]
        if method == "GET":
            return 200, {"value": list(self._jobs[sp_id].values())}, {}
        template_id = data.get("templateId") if isinstance(data, dict) else None
        if not isinstance(template_id, str) or not template_id:
            return _error(400, "BadRequest", "The templateId of the synchronization job is required.")
        template = next((t for t in self._templates[sp_id] if t.get("id") == template_id), None)
        if template is not None:
            schema = template.get("schema") or {}
        elif template_id == "scim":
            schema = SCIM_TEMPLATE_SCHEMA
        else:
            return _error(400, "InvalidTemplate", f"The template '{template_id}' is not available for this "
                          "application.")
        job = self._job_record(template_id, {})
        self._jobs[sp_id][job["id"]] = job
        self._schemas[(sp_id, job["id"])] = self._schema_record(job["id"], schema)
        return 201, {"@odata.context": self._context(f"servicePrincipals('{sp_id}')/synchronization/jobs/$entity"),
                     **job}, {}

    def _job(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        sp_id, job_id = ids
        if job_id not in self._jobs[sp_id]:
            return _missing(job_id)
        if method == "DELETE":
            del self._jobs[sp_id][job_id]
            del self._schemas[(sp_id, job_id)]
            return 204, None, {}
        return 200, dict(self._jobs[sp_id][job_id]), {}

    def _job_action(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        sp_id, job_id, action = ids
        job = self._jobs[sp_id].get(job_id)
        if job is None:
            return _missing(job_id)
        state = "Active" if action == "start" else "Paused"
        job["schedule"]["state"] = state
        job["status"]["code"] = state
        return 204, None, {}

    def _job_schema(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        sp_id, job_id = ids
        if job_id not in self._jobs[sp_id]:
            return _missing(job_id)
        if method == "GET":
            context = self._context(f"servicePrincipals('{sp_id}')/synchronization/jobs('{job_id}')/schema/$entity")
            return 200, {"@odata.context": context, **self._schemas[(sp_id, job_id)]}, {}
        rules = data.get("synchronizationRules") if isinstance(data, dict) else None
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            return _error(400, "BadRequest", "The synchronization schema needs a synchronizationRules list.")
        self.schema_puts.append({"servicePrincipalId": sp_id, "jobId": job_id, "body": copy.deepcopy(data)})
        self._schemas[(sp_id, job_id)] = self._schema_record(job_id, data)
        return 204, None, {}

    def _get_templates(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        return 200, {"value": self._templates[ids[0]]}, {}

    def _sync_secrets(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        sp_id = ids[0]
        if method == "GET":
            shown = [{"key": s["key"], "value": HIDDEN_SECRET if s["key"] == "SecretToken" else s["value"]}
                     for s in self._secrets.get(sp_id, [])]
            return 200, {"value": shown}, {}
        pairs = data.get("value") if isinstance(data, dict) else None
        if not isinstance(pairs, list) or not all(isinstance(p, dict) and isinstance(p.get("key"), str)
                                                  for p in pairs):
            return _error(400, "BadRequest", "The secrets need a value list of key/value pairs.")
        stored = {s["key"]: s for s in self._secrets.get(sp_id, [])}
        for pair in pairs:
            stored[pair["key"]] = {"key": pair["key"], "value": pair.get("value")}
        self._secrets[sp_id] = list(stored.values())
        return 204, None, {}

    def _instantiate(self, method: str, ids: list[str], data: Any, query: dict[str, str]) -> Reply:
        template_id = ids[0]
        if template_id not in self._app_templates:
            return _missing(template_id)
        name = data.get("displayName") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            return _error(400, "BadRequest", "The displayName is required.")
        tags = ["WindowsAzureActiveDirectoryCustomSingleSignOnApplication", "WindowsAzureActiveDirectoryIntegratedApp"]
        app_id, sp_id = self.add_application({"displayName": name},
                                             {"applicationTemplateId": template_id, "tags": tags})
        self.add_template(sp_id, scim_template())
        return 201, {"@odata.context": self._context("microsoft.graph.applicationServicePrincipal"),
                     "application": self._applications[app_id],
                     "servicePrincipal": self._service_principals[sp_id]}, {}

    def _context(self, what: str) -> str:
        return f"{self._origin()}/v1.0/$metadata#{what}"

    def _user(self, record: dict[str, Any], select: list[str] | None, expand: bool) -> dict[str, Any]:
        item = _pick({k: v for k, v in record.items() if k != "manager"}, select)
        if expand and record.get("manager"):
            item["manager"] = {"@odata.type": USER_TYPE, "id": record["manager"]}
        return item

    # paging of full reads: the items as they were at the first page, by offset

    def _first_page(self, path: str, items: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            top = min(max(int(query.get("$top", "100")), 1), self.page_size)
        except ValueError:
            return _error(400, "Request_BadRequest", "Invalid value for $top")
        if len(items) <= top:
            return 200, {"value": items}, {}
        key = f"{next(self._serial)}.{top}"
        self._pages[key] = (items, None)
        return self._slice(path, key, 0, top)

    def _next_page(self, path: str, skiptoken: str) -> Reply:
        key, _, offset = skiptoken.rpartition(":")
        if key not in self._pages or not offset.isdigit():
            return _error(400, "Request_BadRequest", "The skip token is not valid.")
        return self._slice(path, key, int(offset), int(key.split(".")[1]))

    def _slice(self, path: str, key: str, offset: int, size: int) -> Reply:
        items, _ = self._pages[key]
        body: dict[str, Any] = {"value": items[offset:offset + size]}
        if offset + size < len(items):
            body["@odata.nextLink"] = f"{self._origin()}{path}?$skiptoken={key}:{offset + size}"
        else:
            del self._pages[key]
        return 200, body, {}

    # delta rounds

    def _delta(self, path: str, query: dict[str, str]) -> Reply:
        kind = "users" if path == "/v1.0/users/delta" else "groups"
        if "$skiptoken" in query:
            state = _decode(query["$skiptoken"])
            if state is None or state.get("k") != kind or state.get("p") not in self._pages:
                return _error(400, "Request_BadRequest", "The skip token is not valid.")
            if state.get("e") != self._epoch:
                return _expired()
            return self._delta_page(path, state["p"], state["o"])
        token = query.get("$deltatoken")
        if token is not None and token != "latest":
            state = _decode(token)
            if state is None or state.get("k") != kind:
                return _error(400, "Request_BadRequest", "The delta token is not valid.")
            if state.get("e") != self._epoch:
                return _expired()
            select, expand, since = state.get("q"), bool(state.get("x")), int(state["s"])
        else:
            select = _select(query)
            expand = query.get("$expand", "").startswith("manager")
            since = None
        now = len(self._log)
        link_state = {"k": kind, "e": self._epoch, "s": now, "q": select, "x": expand}
        if token == "latest":
            link = f"{self._origin()}{path}?$deltatoken={_encode(link_state)}"
            return 200, {"value": [], "@odata.deltaLink": link}, {}
        items = self._user_changes(since, select, expand) if kind == "users" else self._group_changes(since, select)
        key = str(next(self._serial))
        self._pages[key] = (items, _encode(link_state))
        return self._delta_page(path, key, 0)

    def _delta_page(self, path: str, key: str, offset: int) -> Reply:
        items, link = self._pages[key]
        end = offset + self.delta_page_size
        body: dict[str, Any] = {"value": items[offset:end]}
        if end < len(items):
            state = {"k": "users" if path == "/v1.0/users/delta" else "groups", "e": self._epoch, "p": key, "o": end}
            body["@odata.nextLink"] = f"{self._origin()}{path}?$skiptoken={_encode(state)}"
        else:
            body["@odata.deltaLink"] = f"{self._origin()}{path}?$deltatoken={link}"
            del self._pages[key]
        return 200, body, {}

    def _user_changes(self, since: int | None, select: list[str] | None, expand: bool) -> list[dict[str, Any]]:
        if since is None:
            ids: Iterable[str] = list(self._users)
        else:
            ids = dict.fromkeys(e[1] for e in self._log[since:] if e[0] == "user")
        items = []
        for user_id in ids:
            record = self._users.get(user_id)
            if record is None:
                reason = "changed" if user_id in self._deleted else "deleted"
                items.append({"id": user_id, "@removed": {"reason": reason}})
                continue
            item = {k: v for k, v in record.items() if k != "manager" and (select is None or k in select)}
            item["id"] = user_id
            if expand and record.get("manager"):
                item["manager@delta"] = [{"@odata.type": USER_TYPE, "id": record["manager"]}]
            elif expand and user_id in self._former_manager and "manager" in record:
                item["manager@delta"] = [{"@odata.type": USER_TYPE, "id": self._former_manager[user_id],
                                          "@removed": {"reason": "deleted"}}]
            items.append(item)
        return items

    def _group_changes(self, since: int | None, select: list[str] | None) -> list[dict[str, Any]]:
        changed: dict[str, None] = {}
        members: dict[str, dict[str, str]] = {}
        if since is None:
            changed = dict.fromkeys(self._groups)
            members = {g: dict(m) for g, m in self._members.items()}
        else:
            for event in self._log[since:]:
                if event[0] == "group":
                    changed[event[1]] = None
                elif event[0] == "member":
                    members.setdefault(event[1], {})[event[2]] = event[3]
        with_members = select is None or "members" in select
        items: list[dict[str, Any]] = []
        for group_id in dict.fromkeys((*changed, *members)):
            record = self._groups.get(group_id)
            if record is None:
                if group_id in changed:
                    items.append({"id": group_id, "@removed": {"reason": "deleted"}})
                continue
            item: dict[str, Any] = {"id": group_id}
            if group_id in changed:
                item.update({k: v for k, v in record.items() if select is None or k in select})
            current = self._members[group_id]
            entries = [{"@odata.type": USER_TYPE if kind == "user" else GROUP_TYPE, "id": member,
                        **({} if member in current else {"@removed": {"reason": "deleted"}})}
                       for member, kind in members.get(group_id, {}).items()] if with_members else []
            if group_id not in changed and not entries:
                continue
            item["members@delta"] = entries[:self.delta_members]
            if not entries:
                del item["members@delta"]
            items.append(item)
            for start in range(self.delta_members, len(entries), self.delta_members):
                items.append({"id": group_id, "members@delta": entries[start:start + self.delta_members]})
        return items

    def _origin(self) -> str:
        return self.link_origin or self.endpoint


def _select(query: dict[str, str]) -> list[str] | None:
    value = query.get("$select")
    return None if value is None else [p for p in value.split(",") if p]


def _pick(record: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(record)
    return {"id": record["id"], **{p: record.get(p) for p in select if p != "id"}}


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        return None
    return state if isinstance(state, dict) else None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"error": {"code": code, "message": message}}, headers or {}


def _expired() -> Reply:
    return _error(410, "resyncRequired", "The delta token has expired; start a new synchronization.")


def _missing(object_id: str) -> Reply:
    return _error(404, "Request_ResourceNotFound", f"Resource '{object_id}' does not exist or one of its queried "
                  "reference-property objects are not present.")


_SEGMENT = "([^/]+)"
_SP = f"/v1.0/servicePrincipals/{_SEGMENT}"
_JOBS = f"{_SP}/synchronization/jobs"
_INSTANTIATE = re.compile(f"/v1.0/applicationTemplates/{_SEGMENT}/instantiate")
_BY_APP_ID = re.compile(r"/v1.0/applications\(appId='([^'/]+)'\)")  # Graph's alternate key for an application
_ROUTES: list[tuple[re.Pattern[str], tuple[str, ...], Any]] = [
    (re.compile(f"/v1.0/applications/{_SEGMENT}"), ("GET",), FakeGraph._get_application),
    (_BY_APP_ID, ("GET",), FakeGraph._get_application),
    (re.compile(f"/v1.0/applications/{_SEGMENT}/owners"), ("GET",), FakeGraph._get_owners),
    (re.compile(_SP), ("GET",), FakeGraph._get_service_principal),
    (re.compile(f"{_SP}/appRoleAssignedTo"), ("GET",), FakeGraph._get_assignments),
    (re.compile(_JOBS), ("GET", "POST"), FakeGraph._job_collection),
    (re.compile(f"{_JOBS}/{_SEGMENT}"), ("GET", "DELETE"), FakeGraph._job),
    (re.compile(f"{_JOBS}/{_SEGMENT}/(start|pause)"), ("POST",), FakeGraph._job_action),
    (re.compile(f"{_JOBS}/{_SEGMENT}/schema"), ("GET", "PUT"), FakeGraph._job_schema),
    (re.compile(f"{_SP}/synchronization/templates"), ("GET",), FakeGraph._get_templates),
    (re.compile(f"{_SP}/synchronization/secrets"), ("GET", "PUT"), FakeGraph._sync_secrets),
    (_INSTANTIATE, ("POST",), FakeGraph._instantiate),
]


# The custom ("scim") synchronization template's schema, as a non-gallery app's job starts with it: the two
# directories (a subset of their attributes) and one rule with the portal's default user and group mappings.

USER_TARGET = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_TARGET = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _attribute_definition(name: str, kind: str = "String", *, multivalued: bool = False, anchor: bool = False,
                          referenced: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"anchor": anchor, "apiExpressions": [], "caseExact": False, "defaultValue": None, "flowNullValues": False,
            "metadata": [], "multivalued": multivalued, "mutability": "ReadWrite", "name": name,
            "referencedObjects": [{"referencedObjectName": r, "referencedProperty": None} for r in referenced],
            "required": False, "type": kind}


def _object_definition(name: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"attributes": attributes, "metadata": [], "name": name, "supportedApis": []}


def _attribute_source(name: str, *, top: bool = True) -> dict[str, Any]:
    return {"expression": f"[{name}]" if top else None, "name": name, "parameters": [], "type": "Attribute"}


def _constant(value: str) -> dict[str, Any]:
    return {"expression": None, "name": value, "parameters": [], "type": "Constant"}


def _mapping(target: str, source: dict[str, Any] | str, matching: int = 0) -> dict[str, Any]:
    return {"defaultValue": "", "exportMissingReferences": False, "flowBehavior": "FlowWhenChanged",
            "flowType": "Always", "matchingPriority": matching,
            "source": _attribute_source(source) if isinstance(source, str) else source, "targetAttributeName": target}


_ACTIVE = {
    "expression": 'Switch([IsSoftDeleted], , "False", "True", "True", "False")', "name": "Switch", "type": "Function",
    "parameters": [
        {"key": "source", "value": _attribute_source("IsSoftDeleted", top=False)},
        {"key": "defaultValue", "value": _constant("")},
        {"key": "key", "value": _constant("False")}, {"key": "value", "value": _constant("True")},
        {"key": "key", "value": _constant("True")}, {"key": "value", "value": _constant("False")},
    ],
}

SCIM_TEMPLATE_SCHEMA: dict[str, Any] = {
    "directories": [
        {"discoverabilities": "None", "discoveryDateTime": None, "id": "66e4a8cc-1b7b-435e-95f8-f06cea133828",
         "name": "Azure Active Directory", "readOnly": True, "version": "2024-02-01",
         "objects": [
             _object_definition("User", [
                 _attribute_definition("accountEnabled", "Boolean"), _attribute_definition("city"),
                 _attribute_definition("country"), _attribute_definition("department"),
                 _attribute_definition("displayName"), _attribute_definition("employeeId"),
                 _attribute_definition("givenName"), _attribute_definition("IsSoftDeleted", "Boolean"),
                 _attribute_definition("jobTitle"), _attribute_definition("mail"),
                 _attribute_definition("mailNickname"),
                 _attribute_definition("manager", "Reference", referenced=("User",)),
                 _attribute_definition("mobile"), _attribute_definition("objectId", anchor=True),
                 _attribute_definition("postalCode"), _attribute_definition("preferredLanguage"),
                 _attribute_definition("surname"), _attribute_definition("telephoneNumber"),
                 _attribute_definition("userPrincipalName"),
             ]),
             _object_definition("Group", [
                 _attribute_definition("displayName"), _attribute_definition("mail"),
                 _attribute_definition("mailNickname"),
                 _attribute_definition("members", "Reference", multivalued=True, referenced=("User", "Group")),
                 _attribute_definition("objectId", anchor=True),
             ]),
         ]},
        {"discoverabilities": "AttributeNames, AttributeDataTypes", "discoveryDateTime": None,
         "id": "8ffa6169-f354-4751-9b77-9c00765be92d", "name": "customappsso", "readOnly": False,
         "version": "2024-02-01",
         "objects": [
             _object_definition(USER_TARGET, [
                 _attribute_definition("active", "Boolean"), _attribute_definition("displayName"),
                 _attribute_definition('emails[type eq "work"].value'), _attribute_definition("externalId"),
                 _attribute_definition("id", anchor=True), _attribute_definition("name.familyName"),
                 _attribute_definition("name.givenName"),
                 _attribute_definition('phoneNumbers[type eq "mobile"].value'),
                 _attribute_definition('phoneNumbers[type eq "work"].value'),
                 _attribute_definition("preferredLanguage"), _attribute_definition("title"),
                 _attribute_definition("userName"), _attribute_definition(f"{ENTERPRISE}:department"),
                 _attribute_definition(f"{ENTERPRISE}:employeeNumber"),
                 _attribute_definition(f"{ENTERPRISE}:manager", "Reference", referenced=(USER_TARGET,)),
             ]),
             _object_definition(GROUP_TARGET, [
                 _attribute_definition("displayName"), _attribute_definition("externalId"),
                 _attribute_definition("id", anchor=True),
                 _attribute_definition("members", "Reference", multivalued=True,
                                       referenced=(USER_TARGET, GROUP_TARGET)),
             ]),
         ]},
    ],
    "synchronizationRules": [
        {"containerFilter": {"includedContainers": []}, "editable": True, "groupFilter": {"includedGroups": []},
         "id": "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8", "metadata": [], "name": "USER_OUTBOUND_USER",
         "priority": 1, "sourceDirectoryName": "Azure Active Directory", "targetDirectoryName": "customappsso",
         "objectMappings": [
             {"enabled": True, "flowTypes": "Add, Update, Delete", "metadata": [],
              "name": "Provision Azure Active Directory Users", "scope": None, "sourceObjectName": "User",
              "targetObjectName": USER_TARGET,
              "attributeMappings": [
                  _mapping("userName", "userPrincipalName", matching=1),
                  _mapping("active", _ACTIVE),
                  _mapping("displayName", "displayName"),
                  _mapping("title", "jobTitle"),
                  _mapping('emails[type eq "work"].value', "mail"),
                  _mapping("preferredLanguage", "preferredLanguage"),
                  _mapping("name.givenName", "givenName"),
                  _mapping("name.familyName", "surname"),
                  _mapping('phoneNumbers[type eq "work"].value', "telephoneNumber"),
                  _mapping('phoneNumbers[type eq "mobile"].value', "mobile"),
                  _mapping("externalId", "mailNickname"),
                  _mapping(f"{ENTERPRISE}:employeeNumber", "employeeId"),
                  _mapping(f"{ENTERPRISE}:department", "department"),
                  _mapping(f"{ENTERPRISE}:manager", "manager"),
              ]},
             {"enabled": True, "flowTypes": "Add, Update, Delete", "metadata": [],
              "name": "Provision Azure Active Directory Groups", "scope": None, "sourceObjectName": "Group",
              "targetObjectName": GROUP_TARGET,
              "attributeMappings": [
                  _mapping("displayName", "displayName", matching=1),
                  _mapping("externalId", "objectId"),
                  _mapping("members", "members"),
              ]},
         ]},
    ],
}


def scim_template() -> dict[str, Any]:
    """The ``scim`` synchronization template a non-gallery app's service principal lists."""
    return {"id": "scim", "factoryTag": "scim", "default": True, "description": None, "discoverable": True,
            "metadata": [], "schema": copy.deepcopy(SCIM_TEMPLATE_SCHEMA)}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):   # a client that hung up (e.g. past its size cap)
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if length > MAX_BODY:
            self.close_connection = True   # the body stays unread
            status, body, extra = _error(413, "RequestEntityTooLarge", "The request body is too large.")
        else:
            data = self.rfile.read(length) if length else b""
            status, body, extra = self.server.graph.answer(self.command, self.path, headers, data)
        content_type = "application/json"
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload, content_type = body, extra.pop("Content-Type", "text/html")
        else:
            payload = json.dumps(body, ensure_ascii=False).encode()
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}", f"Content-Type: {content_type}",
                f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in extra.items())]
        try:  # head and body in one write: apart, they would wait on delayed ACKs
            self.wfile.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextmanager
def fake_graph(token: str = TOKEN) -> Iterator[FakeGraph]:
    """A fake Graph on a free loopback port for the duration of the block; ``token`` is the one it accepts."""
    graph = FakeGraph(token)
    server = _Server(graph)
    graph.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield graph
    finally:
        server.shutdown()
        server.server_close()
