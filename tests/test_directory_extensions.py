"""Directory extension attributes (``extension_<appId>_<name>``) as sources, in expressions and scoping filters,
read from snapshots and Microsoft Graph under their own names; a malformed one is one clear validate line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.desired import desired_state
from reconciler.directory.graph import GraphReader
from reconciler.directory_source import read_graph
from reconciler.manifest import load_manifest
from reconciler.plan import Action
from reconciler.scim.paths import ENTERPRISE_USER
from reconciler.validation import validate_paths
from tests.hostile import Reply, Request, serving
from tests.manifest_samples import BASE_LINES
from tests.reconcile_helpers import atea, converge, directory, listing, plan, user

COST = "extension_0123456789abcdef0123456789abcdef_costCenter"
TIER = "extension_fedcba9876543210fedcba9876543210_tier"
NICKNAME = "      - {target: nickName, source: mailNickname}"
FILTER = "    - - {attribute: department, operator: NOT EQUALS, value: Contractors}"
MAPPINGS = (f"{NICKNAME}\n      - {{target: '{ENTERPRISE_USER}:costCenter', source: {COST}}}\n"
            f"      - {{target: title, expression: 'Join(\"/\", [{COST}], [{TIER}])'}}")


def validate(tmp_path: Path, *lines: str) -> list[str]:
    path = tmp_path / "demo.yaml"
    path.write_text("\n".join([*BASE_LINES, *lines]) + "\n")
    return [str(p) for p in validate_paths([path])[1]]


def test_validate_accepts_extension_attributes_in_sources_expressions_and_filters(tmp_path: Path) -> None:
    assert validate(tmp_path,
                    f"      - {{target: '{ENTERPRISE_USER}:costCenter', source: {COST}}}",
                    f"      - {{target: title, expression: 'Append([{COST}], \"-x\")'}}",
                    "  scopingFilters:",
                    f"    - - {{attribute: {TIER}, operator: EQUALS, value: gold}}") == []


@pytest.mark.parametrize("name", [
    "extension_0123456789abcdef0123456789abcde_costCenter",     # 31 hex digits
    "extension_0123456789abcdef0123456789abcdef0_costCenter",   # 33
    "extension_01234567-89ab-cdef-0123-456789abcdef_costCenter",  # the appId with its dashes
    "extension_0123456789ABCDEF0123456789ABCDEF_costCenter",    # Graph returns the appId in lowercase
    "extension_0123456789abcdef0123456789abcdef_",              # no name
])
def test_a_malformed_extension_attribute_is_one_clear_line(tmp_path: Path, name: str) -> None:
    hint = (f"malformed directory extension attribute {name!r}: Entra writes them extension_<appId>_<name>, the "
            "appId as 32 lowercase hex digits without dashes (e.g. extension_0123456789abcdef0123456789abcdef_"
            "costCenter)")
    found = validate(tmp_path,
                     f"      - {{target: title, source: {name}}}",
                     f"      - {{target: nickName, expression: 'Append([{name}], \"-x\")'}}",
                     "  scopingFilters:",
                     f"    - - {{attribute: {name}, operator: EQUALS, value: gold}}")
    path = tmp_path / "demo.yaml"
    assert found == [f"{path}:20:33: provisioning.users.mappings[2].source: {hint}",
                     f"{path}:21:48: provisioning.users.mappings[3].expression: {hint}",
                     f"{path}:23:21: provisioning.scopingFilters[0][0].attribute: {hint}"]


def with_extensions(data: dict[str, Any]) -> None:
    user(data, "adele.vance@contoso.com").update({COST: "CC-4711", TIER: "gold"})
    user(data, "alex.wilber@contoso.com").update({COST: "CC-1000", TIER: "excluded"})
    user(data, "diego.siciliani@contoso.com")[TIER] = "silver"  # and no cost center


def test_a_snapshot_extension_maps_to_a_scim_attribute_and_filters_scope(url: str, tmp_path: Path,
                                                                         monkeypatch: Any) -> None:
    loaded = atea(**{NICKNAME: MAPPINGS,
                     FILTER: f"{FILTER}\n      - {{attribute: {TIER}, operator: NOT EQUALS, value: excluded}}"})
    snapshot = directory(tmp_path, with_extensions)
    planned = plan(loaded, url, snapshot, monkeypatch)
    creates = {s.display: s.body or {} for s in planned.steps if s.action == Action.CREATE}
    assert creates["adele.vance@contoso.com"][ENTERPRISE_USER]["costCenter"] == "CC-4711"
    assert creates["adele.vance@contoso.com"]["title"] == "CC-4711/gold"
    assert "alex.wilber@contoso.com" not in creates  # tier "excluded": out of scope
    assert "costCenter" not in creates["diego.siciliani@contoso.com"].get(ENTERPRISE_USER, {})
    assert "grady.archie@contoso.com" not in creates  # unassigned, as before

    assert converge(loaded, url, snapshot, monkeypatch).converged
    adele = next(u for u in listing(url) if u["userName"] == "adele.vance@contoso.com")
    assert adele[ENTERPRISE_USER]["costCenter"] == "CC-4711" and adele["title"] == "CC-4711/gold"


class Credential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return SimpleNamespace(token="graph-token-ext-3c9a", expires_on=0)


def test_the_graph_reader_selects_extension_attributes_by_their_own_names(tmp_path: Path) -> None:
    pages = {"/v1.0/users": [{"id": "u1", "userPrincipalName": "adele@contoso.com", "accountEnabled": True,
                              COST: "CC-4711", TIER: "gold"}],
             "/v1.0/groups": [{"id": "g1", "displayName": "Demo Users"}],
             "/v1.0/groups/g1/members/microsoft.graph.user": [{"id": "u1"}]}

    def graph(request: Request) -> Reply:
        return Reply(200, {"value": pages.get(request.route, [])}, content_type="application/json")

    path = tmp_path / "demo.yaml"
    path.write_text("\n".join([*BASE_LINES, f"      - {{target: '{ENTERPRISE_USER}:costCenter', source: {COST}}}",
                               "  scopingFilters:",
                               f"    - - {{attribute: {TIER}, operator: EQUALS, value: gold}}"]) + "\n")
    loaded = load_manifest(path)
    with serving(graph) as server:
        reader = GraphReader(credential=Credential(), endpoint=server.url, timeout=2.0, deadline=5.0)
        found = asyncio.run(read_graph(loaded, reader))
        query = next(r.query for r in server.requests if r.route == "/v1.0/users")
    assert {COST, TIER, "userPrincipalName"} <= set(query["$select"].split(","))
    assert found.users[0].get(COST) == "CC-4711"
    state = desired_state(loaded.manifest, found)
    assert [u.resource[ENTERPRISE_USER]["costCenter"] for u in state.users] == ["CC-4711"]
