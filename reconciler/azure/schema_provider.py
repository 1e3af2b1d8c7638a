"""Entra's provisioning job, finished: its synchronization schema and its start, as Pulumi dynamic resources
(pulumi-azuread has none for the schema).

- :class:`SynchronizationSchema`: the manifest's managed part of the job's ``synchronizationSchema``
  (:func:`reconciler.entra.schema.compile_schema`, as JSON text). Create and update GET the job's schema, replace
  the managed part (:func:`reconciler.entra.managed.merged`: directories, rule ids, mapping names and metadata stay
  as the job has them) and PUT it back, unless the live part already compares equal. ``diff`` compares the managed
  parts only (:func:`~reconciler.entra.managed.comparable`); another service principal or job replaces the
  resource. ``read`` (``pulumi refresh``) returns the live managed part, so an edit in the portal shows as drift
  and the next ``pulumi up`` puts the manifest's back. Delete restores the schema of the job's template.
- :class:`SynchronizationJobStart`: starts the job (once the schema is applied: it depends on it), pauses it on
  delete; ``read`` reports the job's ``schedule.state``, and a job found not ``Active`` is started again.

No credential is captured: the provider objects have no attributes (Pulumi pickles them into the state) and the
inputs name at most the variable that holds a token (``tokenEnv``). Each method makes its own
:class:`~reconciler.entra.graphapi.GraphClient`, which takes the token from that variable or from azure-identity's
credential chain. Failures raise :class:`~reconciler.entra.graphapi.GraphApiError` (one line naming the request).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from reconciler.entra.graphapi import GRAPH_ENDPOINT, GraphApiError, GraphClient, segment
from reconciler.entra.managed import comparable, managed_part, merged
from reconciler.errors import ReconcilerError

PROVIDER_KEY = "__provider"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"   # a value not known during a preview, as the engine sends it
IDENTITY = ("servicePrincipalId", "jobId")          # another one is another resource: replaced


class SchemaResourceError(ReconcilerError):
    """The resource's inputs or the job's state make the operation impossible."""


def _client(props: dict[str, Any]) -> GraphClient:
    return GraphClient(str(props.get("graphEndpoint") or GRAPH_ENDPOINT), token_env=props.get("tokenEnv") or None)


def _job_path(props: dict[str, Any]) -> str:
    return (f"/servicePrincipals/{segment(str(props['servicePrincipalId']))}/synchronization/jobs/"
            f"{segment(str(props['jobId']))}")


def _without_annotations(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if not k.startswith("@odata.")}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def _managed(props: dict[str, Any]) -> dict[str, Any]:
    value = json.loads(props["managed"]) if isinstance(props.get("managed"), str) else props.get("managed")
    if not isinstance(value, dict) or not isinstance(value.get("synchronizationRules"), list):
        raise SchemaResourceError("SynchronizationSchema: 'managed' is not a managed schema part "
                                  "(a JSON object with synchronizationRules)")
    return value


def _ids(id_: str, props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with the service principal and job taken from the resource id where they are missing (an
    import passes the id alone)."""
    if props.get("servicePrincipalId") and props.get("jobId"):
        return props
    sp_id, _, job_id = id_.partition("/")
    if not sp_id or not job_id:
        raise SchemaResourceError(f"resource id {id_!r} is not SERVICE_PRINCIPAL_ID/JOB_ID")
    return {**props, "servicePrincipalId": sp_id, "jobId": job_id}


def _found(graph: GraphClient, path: str) -> dict[str, Any] | None:
    """The object at ``path``, or None when Graph answers 404 (it is gone)."""
    try:
        return graph.get(path)
    except GraphApiError as error:
        if error.status == 404:
            return None
        raise


def _diff(olds: dict[str, Any], news: dict[str, Any], settings: tuple[str, ...],
          changed: Callable[[], bool]) -> dynamic.DiffResult:
    """Another service principal or job replaces the resource; a changed setting, or ``changed()``, updates it."""
    replaces = [k for k in IDENTITY if olds.get(k) != news.get(k)]
    if replaces:
        return dynamic.DiffResult(changes=True, replaces=replaces, delete_before_replace=True)
    return dynamic.DiffResult(changes=any(olds.get(k) != news.get(k) for k in settings) or changed())


class SynchronizationSchemaProvider(dynamic.ResourceProvider):
    """The managed part of a provisioning job's synchronizationSchema; see the module's description."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures = []
        try:
            _managed(news)
        except (SchemaResourceError, ValueError) as error:
            reason = str(error) if isinstance(error, SchemaResourceError) else f"'managed' is not JSON: {error}"
            failures.append(dynamic.CheckFailure("managed", reason))
        for key in IDENTITY:
            if not isinstance(news.get(key), str) or not news[key]:
                failures.append(dynamic.CheckFailure(key, f"{key} is required"))
        return dynamic.CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = self._apply(_inputs(props))
        return dynamic.CreateResult(f"{props['servicePrincipalId']}/{props['jobId']}", outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._apply(_inputs(news)))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return _diff(olds, news, ("graphEndpoint", "tokenEnv", "templateId"), lambda: self._drifted(olds, news))

    @staticmethod
    def _drifted(olds: dict[str, Any], news: dict[str, Any]) -> bool:
        if news.get("managed") == UNKNOWN:
            return True
        applied = olds.get("appliedManaged") or olds.get("managed")
        try:
            return comparable(json.loads(str(applied))) != comparable(_managed(news))
        except (TypeError, ValueError, ReconcilerError):
            return True

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        props = _ids(id_, _inputs(props))
        with _client(props) as graph:
            live = _found(graph, f"{_job_path(props)}/schema")
        if live is None:
            return dynamic.ReadResult("", {})   # the job is gone, and its schema with it
        return dynamic.ReadResult(id_, {**props, **self._state(live)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        props = _ids(id_, _inputs(props))
        with _client(props) as graph:
            job = _found(graph, _job_path(props))
            if job is None:
                return
            template_id = str(job.get("templateId") or props.get("templateId") or "")
            templates = graph.get_all(f"/servicePrincipals/{segment(str(props['servicePrincipalId']))}"
                                      "/synchronization/templates")
            template = next((t for t in templates if t.get("id") == template_id), None)
            if template is None or not isinstance(template.get("schema"), dict):
                raise SchemaResourceError(
                    f"SynchronizationSchema {id_}: the service principal lists no synchronization template "
                    f"{template_id!r} to restore the job's schema from; the schema was left as it is")
            graph.put(f"{_job_path(props)}/schema", _without_annotations(template["schema"]))

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        managed = _managed(props)
        path = f"{_job_path(props)}/schema"
        with _client(props) as graph:
            live = graph.get(path)
            if comparable(managed_part(live)) != comparable(managed):
                graph.put(path, merged(_without_annotations(live), managed))
                live = graph.get(path)
        return {**props, **self._state(live)}

    @staticmethod
    def _state(live: dict[str, Any]) -> dict[str, Any]:
        return {"appliedManaged": _json(managed_part(live)), "schemaVersion": str(live.get("version") or "")}


class SynchronizationSchema(dynamic.Resource, module="reconciler", name="SynchronizationSchema"):
    """Inputs: ``servicePrincipalId``, ``jobId``, ``templateId``, ``graphEndpoint``, ``managed`` (the
    compile_schema dict as JSON text) and optionally ``tokenEnv``. Outputs add ``appliedManaged`` (the live managed
    part, JSON text) and ``schemaVersion``."""

    applied_managed: pulumi.Output[str]
    schema_version: pulumi.Output[str]

    def __init__(self, name: str, *, service_principal_id: pulumi.Input[str], job_id: pulumi.Input[str],
                 template_id: pulumi.Input[str], managed: str, graph_endpoint: str = GRAPH_ENDPOINT,
                 token_env: str | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "servicePrincipalId": service_principal_id, "jobId": job_id, "templateId": template_id,
            "graphEndpoint": graph_endpoint, "managed": managed, "appliedManaged": None, "schemaVersion": None,
        }
        if token_env:
            props["tokenEnv"] = token_env
        super().__init__(SynchronizationSchemaProvider(), name, props, opts)


class SynchronizationJobStartProvider(dynamic.ResourceProvider):
    """Starts a provisioning job, pauses it on delete; see the module's description."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        props = _inputs(props)
        return dynamic.CreateResult(f"{props['servicePrincipalId']}/{props['jobId']}", self._start(props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._start(_inputs(news)))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return _diff(olds, news, ("graphEndpoint", "tokenEnv"), lambda: olds.get("state") != "Active")

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        props = _ids(id_, _inputs(props))
        with _client(props) as graph:
            job = _found(graph, _job_path(props))
        if job is None:
            return dynamic.ReadResult("", {})
        return dynamic.ReadResult(id_, {**props, "state": _state(job)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        props = _ids(id_, _inputs(props))
        with _client(props) as graph:
            try:
                graph.post(f"{_job_path(props)}/pause")
            except GraphApiError as error:
                if error.status != 404:   # the job is gone: nothing runs
                    raise

    @staticmethod
    def _start(props: dict[str, Any]) -> dict[str, Any]:
        with _client(props) as graph:
            graph.post(f"{_job_path(props)}/start")
            job = graph.get(_job_path(props))
        return {**props, "state": _state(job)}


def _state(job: dict[str, Any]) -> str:
    schedule = job.get("schedule")
    return str(schedule.get("state") or "") if isinstance(schedule, dict) else ""


class SynchronizationJobStart(dynamic.Resource, module="reconciler", name="SynchronizationJobStart"):
    """Inputs: ``servicePrincipalId``, ``jobId``, ``graphEndpoint`` and optionally ``tokenEnv``; output ``state``
    (the job's ``schedule.state``)."""

    state: pulumi.Output[str]

    def __init__(self, name: str, *, service_principal_id: pulumi.Input[str], job_id: pulumi.Input[str],
                 graph_endpoint: str = GRAPH_ENDPOINT, token_env: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {"servicePrincipalId": service_principal_id, "jobId": job_id,
                                 "graphEndpoint": graph_endpoint, "state": None}
        if token_env:
            props["tokenEnv"] = token_env
        super().__init__(SynchronizationJobStartProvider(), name, props, opts)

