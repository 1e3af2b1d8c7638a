"""The Pulumi dynamic providers of reconciler.azure.schema_provider, their methods called as the engine calls them,
against the loopback fake Microsoft Graph (tests/fake_graph.py)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from reconciler.azure.schema_provider import (
    SchemaResourceError,
    SynchronizationJobStartProvider,
    SynchronizationSchemaProvider,
)
from reconciler.entra.graphapi import GraphApiError, GraphClient
from reconciler.entra.managed import comparable, managed_part
from reconciler.entra.schema import compile_schema
from tests.azure_helpers import ENTRA, atea_with
from tests.fake_graph import NON_GALLERY_TEMPLATE_ID, SCIM_TEMPLATE_SCHEMA, TOKEN, FakeGraph, fake_graph, scim_template

VARIABLE = "RECONCILER_TEST_GRAPH_TOKEN"
PROVIDER = "serialized-provider-placeholder"   # the engine passes the pickled provider along


@dataclass
class Job:
    graph: FakeGraph
    sp_id: str
    job_id: str

    def props(self, managed: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"servicePrincipalId": self.sp_id, "jobId": self.job_id, "templateId": "scim",
                "graphEndpoint": self.graph.endpoint, "tokenEnv": VARIABLE, "managed": json.dumps(managed),
                "__provider": PROVIDER, **extra}

    @property
    def schema_path(self) -> str:
        return f"/v1.0/servicePrincipals/{self.sp_id}/synchronization/jobs/{self.job_id}/schema"

    def puts(self) -> int:
        return self.graph.calls[("PUT", self.schema_path)]


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> Iterator[Job]:
    """A custom app instantiated from the non-gallery template, with a job made from its ``scim`` template."""
    monkeypatch.setenv(VARIABLE, TOKEN)
    with fake_graph() as graph:
        _, sp_id = graph.add_application({"displayName": "Atea"}, {"applicationTemplateId": NON_GALLERY_TEMPLATE_ID})
        graph.add_template(sp_id, scim_template())
        job_id = graph.add_job(sp_id, {"templateId": "scim"}, SCIM_TEMPLATE_SCHEMA)
        yield Job(graph, sp_id, job_id)


def atea_managed(*pairs: str) -> dict[str, Any]:
    return compile_schema(atea_with(*ENTRA, *pairs).manifest)


def test_create_puts_the_managed_part_and_keeps_the_rest(job: Job) -> None:
    managed = atea_managed()
    provider = SynchronizationSchemaProvider()
    result = provider.create(job.props(managed))
    live = job.graph.schema(job.sp_id, job.job_id)
    assert comparable(managed_part(live)) == comparable(managed)
    assert len(job.graph.schema_puts) == 1
    body = job.graph.schema_puts[0]["body"]
    assert body["directories"] == SCIM_TEMPLATE_SCHEMA["directories"]
    assert not any(key.startswith("@odata.") for key in body)
    rule, template_rule = body["synchronizationRules"][0], SCIM_TEMPLATE_SCHEMA["synchronizationRules"][0]
    assert {k: v for k, v in rule.items() if k != "objectMappings"} == \
        {k: v for k, v in template_rule.items() if k != "objectMappings"}
    assert [m["name"] for m in rule["objectMappings"]] == ["Provision Azure Active Directory Users",
                                                            "Provision Azure Active Directory Groups"]
    assert result.id == f"{job.sp_id}/{job.job_id}"
    assert result.outs is not None and "__provider" not in result.outs
    assert comparable(json.loads(result.outs["appliedManaged"])) == comparable(managed)
    assert result.outs["schemaVersion"] == live["version"]


def test_other_object_mappings_are_kept(job: Job) -> None:
    schema = copy.deepcopy(SCIM_TEMPLATE_SCHEMA)
    contact = {"enabled": False, "flowTypes": "Add, Update, Delete", "metadata": [{"key": "k", "value": "v"}],
               "name": "Provision contacts", "scope": None, "sourceObjectName": "Contact",
               "targetObjectName": "urn:example:Contact", "attributeMappings": []}
    schema["synchronizationRules"][0]["objectMappings"].append(contact)
    job.graph.set_schema(job.sp_id, job.job_id, schema)
    SynchronizationSchemaProvider().create(job.props(atea_managed()))
    assert job.graph.schema(job.sp_id, job.job_id)["synchronizationRules"][0]["objectMappings"][2] == contact


def test_applying_an_equal_managed_part_puts_nothing(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = job.props(atea_managed())
    first = provider.create(props)
    again = provider.update(first.id, {**props, **(first.outs or {})}, props)
    assert job.puts() == 1
    assert again.outs is not None and again.outs["schemaVersion"] == (first.outs or {})["schemaVersion"]


def test_diff_on_the_managed_part_only(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = job.props(atea_managed())
    outs = {**props, **(provider.create(props).outs or {})}
    same = provider.diff("id", outs, props)
    assert same.changes is False and not same.replaces
    reordered = json.loads(props["managed"])
    reordered["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"].reverse()
    assert provider.diff("id", outs, {**props, "managed": json.dumps(reordered)}).changes is False
    changed = provider.diff("id", outs, job.props(atea_managed("source: mailNickname}", "source: displayName}")))
    assert changed.changes is True and not changed.replaces
    moved = provider.diff("id", outs, {**props, "jobId": "scim.other"})
    assert moved.changes is True and moved.replaces == ["jobId"]
    assert provider.diff("id", outs, {**props, "servicePrincipalId": "x"}).replaces == ["servicePrincipalId"]
    assert job.puts() == 1   # diff sends nothing


def test_read_after_a_portal_edit_shows_the_drift(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = job.props(atea_managed())
    created = provider.create(props)
    outs = {**props, **(created.outs or {})}
    edited = job.graph.schema(job.sp_id, job.job_id)
    user_mapping = edited["synchronizationRules"][0]["objectMappings"][0]
    user_mapping["attributeMappings"] = [m for m in user_mapping["attributeMappings"]
                                         if m["targetAttributeName"] != "nickName"]
    job.graph.set_schema(job.sp_id, job.job_id, edited)    # an administrator removes a mapping in the portal

    read = provider.read(created.id, outs)
    assert read.id == created.id
    assert read.outs is not None and read.outs["managed"] == props["managed"]   # the inputs are kept
    assert read.outs["appliedManaged"] != outs["appliedManaged"]
    assert read.outs["schemaVersion"] != outs["schemaVersion"]
    targets = [m["targetAttributeName"] for m in
               json.loads(read.outs["appliedManaged"])["synchronizationRules"][0]["objectMappings"][0]
               ["attributeMappings"]]
    assert "nickName" not in targets and "userName" in targets
    assert provider.diff(created.id, read.outs, props).changes is True   # the next up puts it back
    provider.update(created.id, read.outs, props)
    assert comparable(managed_part(job.graph.schema(job.sp_id, job.job_id))) == comparable(atea_managed())


def test_read_by_id_alone_and_of_a_deleted_job(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = {"graphEndpoint": job.graph.endpoint, "tokenEnv": VARIABLE, "__provider": PROVIDER}
    read = provider.read(f"{job.sp_id}/{job.job_id}", props)
    assert read.outs is not None and read.outs["jobId"] == job.job_id
    assert comparable(json.loads(read.outs["appliedManaged"])) == comparable(managed_part(SCIM_TEMPLATE_SCHEMA))
    with pytest.raises(SchemaResourceError, match="not SERVICE_PRINCIPAL_ID/JOB_ID"):
        provider.read("nonsense", props)
    with GraphClient(job.graph.endpoint, token_env=VARIABLE) as graph:
        graph.delete(f"/servicePrincipals/{job.sp_id}/synchronization/jobs/{job.job_id}")
    assert provider.read(f"{job.sp_id}/{job.job_id}", props).id == ""


def test_delete_restores_the_template_schema(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = job.props(atea_managed())
    created = provider.create(props)
    assert comparable(managed_part(job.graph.schema(job.sp_id, job.job_id))) != \
        comparable(managed_part(SCIM_TEMPLATE_SCHEMA))
    provider.delete(created.id, {**props, **(created.outs or {})})
    restored = job.graph.schema(job.sp_id, job.job_id)
    assert restored["synchronizationRules"] == SCIM_TEMPLATE_SCHEMA["synchronizationRules"]
    assert restored["directories"] == SCIM_TEMPLATE_SCHEMA["directories"]
    assert job.puts() == 2


def test_delete_without_the_template_fails_in_one_line_and_of_a_gone_job_succeeds(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = job.props(atea_managed())
    job.graph._templates[job.sp_id].clear()
    with pytest.raises(SchemaResourceError) as raised:
        provider.delete(f"{job.sp_id}/{job.job_id}", props)
    assert "no synchronization template 'scim'" in str(raised.value) and "\n" not in str(raised.value)
    assert job.puts() == 0
    provider.delete(f"{job.sp_id}/scim.gone", {**props, "jobId": "scim.gone"})


def test_a_graph_400_on_put_is_one_line(job: Job) -> None:
    job.graph.fail("PUT", job.schema_path, 400, {"error": {"code": "InvalidSchema", "message":
                                                            "Attribute 'x'\nis not defined."}})
    with pytest.raises(GraphApiError) as raised:
        SynchronizationSchemaProvider().create(job.props(atea_managed()))
    assert str(raised.value) == f"Microsoft Graph: PUT {job.schema_path}: HTTP 400 InvalidSchema: Attribute 'x' " \
        "is not defined."


def test_check_reports_a_managed_part_that_is_not_one(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    good = provider.check({}, job.props(atea_managed()))
    assert good.failures == []
    bad = provider.check({}, {**job.props({}), "managed": "{not json", "jobId": ""})
    assert [f.property for f in bad.failures] == ["managed", "jobId"]


def test_no_token_in_the_state_outputs_or_the_pickled_provider(job: Job) -> None:
    provider = SynchronizationSchemaProvider()
    props = job.props(atea_managed())
    created = provider.create(props)
    read = provider.read(created.id, {**props, **(created.outs or {})})
    start = SynchronizationJobStartProvider()
    started = start.create(job.props({}))
    for blob in (dill.dumps(provider, recurse=True), dill.dumps(start, recurse=True),
                 json.dumps([created.outs, read.outs, started.outs]).encode()):
        assert TOKEN.encode() not in blob
    assert vars(provider) == {} and vars(start) == {}
    serialized = serialize_provider(provider)   # what the engine stores in the state, as Pulumi makes it
    assert TOKEN not in serialized and TOKEN.encode() not in base64.b64decode(serialized)
    assert type(dill.loads(base64.b64decode(serialized))) is SynchronizationSchemaProvider   # by reference


def test_start_then_pause_on_delete(job: Job) -> None:
    start = SynchronizationJobStartProvider()
    props = {k: v for k, v in job.props({}).items() if k not in ("managed", "templateId")}
    assert job.graph.job(job.sp_id, job.job_id)["schedule"]["state"] == "Disabled"
    created = start.create(props)
    assert created.outs is not None and created.outs["state"] == "Active"
    assert job.graph.job(job.sp_id, job.job_id)["schedule"]["state"] == "Active"
    outs = {**props, **created.outs}
    assert start.diff(created.id, outs, props).changes is False
    job.graph._jobs[job.sp_id][job.job_id]["schedule"]["state"] = "Paused"   # paused in the portal
    read = start.read(created.id, outs)
    assert read.outs is not None and read.outs["state"] == "Paused"
    assert start.diff(created.id, read.outs, props).changes is True
    assert (start.update(created.id, read.outs, props).outs or {})["state"] == "Active"
    start.delete(created.id, outs)
    assert job.graph.job(job.sp_id, job.job_id)["schedule"]["state"] == "Paused"
    path = f"/v1.0/servicePrincipals/{job.sp_id}/synchronization/jobs/{job.job_id}"
    assert job.graph.calls[("POST", f"{path}/start")] == 2 and job.graph.calls[("POST", f"{path}/pause")] == 1


def test_a_missing_token_variable_is_one_line(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE)
    with pytest.raises(GraphApiError, match=f"^Microsoft Graph: environment variable {VARIABLE} is not set"):
        SynchronizationSchemaProvider().create(job.props(atea_managed()))
