"""Reading back what a round wrote, at about one request per changed object in all.

A write's answer stands for the object when it is a full resource (a POST's 201 body, a PATCH's 200 body, a Bulk
operation's response); what no answer gave is read back many per request (``filter=id eq "a" or id eq "b"``), or
one GET each on a target that does not support that filter, as the plan's notes then say. Against the embedded
target (scim2-server answers a PATCH with 204) and :class:`tests.interop_server.InteropTarget` (full answers),
behind fronts that answer as other servers do. Every case ends with the target in the desired state.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from reconciler.apply import ApplyReport
from reconciler.manifest import LoadedManifest
from reconciler.run import AppRun, RunOptions, RunResult
from reconciler.scim import client as scim_client
from reconciler.scim.bulk import BulkOperation
from reconciler.scim.client import parse_bulk_response
from reconciler.scim.paths import CORE_GROUP, CORE_USER, ENTERPRISE_USER
from tests.hostile import Reply, Request, scim_list, serving
from tests.interop_server import InteropTarget, Quirks, Refused
from tests.reconcile_helpers import TOKEN, directory, group, listing, user, wiki

ENGINEERING = ["grady.archie@contoso.com", "henrietta.mueller@contoso.com", "johanna.lorenz@contoso.com",
               "lee.gu@contoso.com", "lidia.holloway@contoso.com", "jose.muller@contoso.com"]
SALES = ["isaiah.langer@contoso.com", "lynne.robbins@contoso.com", "megan.bowen@contoso.com",
         "miriam.graham@contoso.com"]
READ_BACK_NOTE = "objects written are read back one GET each"
_IDS = re.compile(r'id eq "((?:[^"\\]|\\.)*)"')
_ID_FILTER = re.compile(r'^id eq "(?:[^"\\]|\\.)*"(?: or id eq "(?:[^"\\]|\\.)*")*$')


@pytest.fixture(autouse=True)
def environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("WIKI_SCIM_TOKEN", TOKEN)


# -- what the run sends -------------------------------------------------------------------------------------------


@dataclass
class Sent:
    method: str
    path: str               # under the target URL
    params: dict[str, str]

    @property
    def by_id(self) -> bool:
        return self.method == "GET" and re.fullmatch(r"/(Users|Groups)/[^/]+", self.path) is not None

    @property
    def by_filter(self) -> bool:
        return self.method == "GET" and "id eq" in self.params.get("filter", "")


def run(loaded: LoadedManifest, url: str, snapshot: str, **options: Any) -> tuple[RunResult, list[Sent]]:
    """Converge, recording every request the run's client sends."""
    sent: list[Sent] = []
    mount = urlsplit(url).path.rstrip("/")

    async def go() -> RunResult:
        async with AppRun(loaded, RunOptions(directory=snapshot, target=url, **options)) as app:
            async def record(request: httpx.Request) -> None:
                sent.append(Sent(request.method, request.url.path[len(mount):], dict(request.url.params)))

            app.client.add_request_hook(record)
            return await app.converge()

    return asyncio.run(go()), sent


def after_writes(sent: list[Sent]) -> list[Sent]:
    """The reads sent after the round's first write: what reading back cost."""
    first = next(i for i, s in enumerate(sent) if s.method != "GET")
    return [s for s in sent[first:] if s.method == "GET"]


def ids_asked(reads: list[Sent]) -> list[str]:
    return [rid for s in reads for rid in _IDS.findall(s.params["filter"])]


def renamed(count: int, title: str = "Changed") -> Callable[[dict[str, Any]], None]:
    """The first ``count`` Engineering and Sales users get a new job title."""
    def edit(data: dict[str, Any]) -> None:
        for upn in [*ENGINEERING, *SALES][:count]:
            user(data, upn)["jobTitle"] = title
    return edit


def changed(users: list[dict[str, Any]], title: str = "Changed") -> list[str]:
    """The userNames, sorted, of the users with that title."""
    return sorted(u["userName"] for u in users if u.get("title") == title)


def memberships(users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> dict[str, set[str]]:
    names = {u["id"]: u["userName"] for u in users}
    return {g["displayName"]: {names[m["value"]] for m in g.get("members") or []} for g in groups}


# -- a front that answers as other servers do ---------------------------------------------------------------------


@dataclass
class Answering(InteropTarget):
    """The interop server, answering some requests as other servers do:

    - ``patch_answer``: ``"full"`` (200 with the resource), ``"none"`` (204), ``"partial"`` (200 with ``id`` and
      ``schemas`` only), ``"no-members"`` (200 with a group's resource but without ``members``);
    - ``id_filter``: None (the interop server's own filter: one ``eq`` only, an ``or`` refused), ``"or"``
      (``id eq "a" or id eq "b" ...`` understood), ``"refused"`` (400 ``invalidFilter``), ``"dropped"`` (the
      connection closed unanswered), ``"first"`` (only the first clause applied), ``"ignored"`` (every object,
      while ServiceProviderConfig says filters are supported);
    - ``bulk_responses``: /Bulk advertised and served, each POST's result carrying the created resource;
    - ``filter_delay``: seconds an ``id`` filter takes to answer (a server that scans every object for it).
    """

    patch_answer: str = "full"
    id_filter: str | None = None
    bulk_responses: bool = False
    filter_delay: float = 0.0

    def __call__(self, request: Request) -> Reply | None:
        authorized = self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"
        if request.route == f"{self.quirks.mount}/Bulk" and request.method == "POST" and self.bulk_responses \
                and authorized:
            return self._bulk(request)
        if self.id_filter == "dropped" and request.method == "GET" and " or " in request.query.get("filter", ""):
            return None
        reply = super().__call__(request)
        if request.method != "PATCH" or reply is None or reply.status != 200 or self.patch_answer == "full":
            return reply
        body = dict(reply.body)
        if self.patch_answer == "none":
            return Reply(204)
        if self.patch_answer == "partial":
            return Reply(200, {"schemas": body["schemas"], "id": body["id"]})
        body.pop("members", None)
        return Reply(200, body)

    def _discovery(self, name: str) -> dict[str, Any]:
        document = super()._discovery(name)
        if name == "ServiceProviderConfig":
            if self.bulk_responses:
                document["bulk"] = {"supported": True, "maxOperations": 10, "maxPayloadSize": 1_000_000}
            if self.id_filter == "ignored":
                document["filter"] = {"supported": True, "maxResults": 200}
        return document

    def _list(self, kind: str, query: dict[str, str]) -> dict[str, Any]:
        text = query.get("filter") or ""
        if self.id_filter is None or not _ID_FILTER.match(text):
            return super()._list(kind, query)
        if self.id_filter == "refused":
            raise Refused(400, f"unsupported filter {text!r}", "invalidFilter")
        time.sleep(self.filter_delay)
        wanted = [json.loads(f'"{rid}"') for rid in _IDS.findall(text)]
        if self.id_filter == "first":
            wanted = wanted[:1]
        found = [r for r in self.store[kind].values() if self.id_filter == "ignored" or r["id"] in wanted]
        start = max(1, int(query.get("startIndex", 1)))
        count = int(query.get("count", 100))
        if self.quirks.page_cap is not None:
            count = min(count, self.quirks.page_cap)
        page = found[start - 1:start - 1 + count]
        return scim_list([self._shown(r, query) for r in page], total=len(found), start=start)

    def _bulk(self, request: Request) -> Reply:
        results = []
        with self._lock:
            for operation in request.json()["Operations"]:
                created = self._create("User", copy.deepcopy(operation["data"]))
                results.append({"method": "POST", "bulkId": operation["bulkId"], "status": "201",
                                "location": self._location(created), "response": copy.deepcopy(created)})
        return Reply(200, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"], "Operations": results})


@contextmanager
def answering(*, patch_answer: str = "full", id_filter: str | None = None, bulk_responses: bool = False,
              filter_delay: float = 0.0, **quirks: Any) -> Iterator[Answering]:
    target = Answering(Quirks(**quirks), patch_answer=patch_answer, id_filter=id_filter,
                       bulk_responses=bulk_responses, filter_delay=filter_delay)
    with serving(target) as server:
        target.server = server
        yield target


def stored(target: InteropTarget) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return list(target.users.values()), list(target.groups.values())


# -- answers that stand for the object ----------------------------------------------------------------------------


def test_writes_answered_with_full_resources_are_not_read_back(tmp_path: Path) -> None:
    with answering() as target:
        result, sent = run(wiki(), target.url, directory(tmp_path))
        assert result.converged and len(result.rounds) == 1, result.failures
        assert result.done() == {"create": 12}  # ten users, two groups (their members in one PATCH each)
        assert after_writes(sent) == []

        def change(data: dict[str, Any]) -> None:
            renamed(3)(data)
            group(data, "Engineering")["members"].remove(user(data, "lee.gu@contoso.com")["id"])
            group(data, "Sales")["members"].append(user(data, "lee.gu@contoso.com")["id"])

        result, sent = run(wiki(), target.url, directory(tmp_path, change, "changed.json"))
        assert result.converged and len(result.rounds) == 1, result.failures
        assert result.done() == {"update": 5}
        assert after_writes(sent) == []  # three users and two groups, each PATCH answered with the resource
        users, groups = stored(target)
        assert changed(users) == sorted(ENGINEERING[:3])
        assert memberships(users, groups) == {"Engineering": set(ENGINEERING) - {"lee.gu@contoso.com"},
                                              "Sales": {*SALES, "lee.gu@contoso.com"}}
        assert result.final.notes == []


def test_bulk_operations_answered_with_their_resources_are_not_read_back(tmp_path: Path) -> None:
    def more_engineers(data: dict[str, Any]) -> None:
        engineering = group(data, "Engineering")
        for n in range(24):
            uid = f"00000000-0000-4000-8000-{n:012d}"
            data["users"].append({"id": uid, "userPrincipalName": f"engineer{n:02d}@contoso.com",
                                  "displayName": f"Engineer {n}", "accountEnabled": True,
                                  "department": "Engineering"})
            engineering["members"].append(uid)

    with answering(bulk_responses=True) as target:
        result, sent = run(wiki(), target.url, directory(tmp_path, more_engineers))
        assert result.converged and len(result.rounds) == 1, result.failures
        assert [s.method for s in sent].count("POST") == 4 + 2  # 34 users in batches of 10, then two groups
        assert after_writes(sent) == []
        users, groups = stored(target)
        assert len(users) == 34 and len(memberships(users, groups)["Engineering"]) == 30


# -- what no answer gave: read back many per request --------------------------------------------------------------


def test_patches_answered_204_are_read_back_by_filter_in_chunks(url: str, tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    run(wiki(), url, directory(tmp_path))
    monkeypatch.setattr(scim_client, "IDS_PER_FILTER", 3)
    result, sent = run(wiki(), url, directory(tmp_path, renamed(7), "renamed.json"))
    assert result.converged and len(result.rounds) == 1, result.failures
    assert result.done() == {"update": 7}
    reads = after_writes(sent)
    assert [s.path for s in reads] == ["/Users"] * 3  # scim2-server answers PATCH with 204: 7 users in 3 reads
    assert all(s.by_filter and s.params["attributes"].startswith("externalId,userName") for s in reads)
    assert sorted(map(len, (_IDS.findall(s.params["filter"]) for s in reads))) == [1, 3, 3]
    assert len(set(ids_asked(reads))) == 7
    assert changed(listing(url)) == sorted([*ENGINEERING, *SALES][:7])
    assert result.final.notes == []


def test_a_filtered_read_that_the_server_pages_is_followed_to_its_end(tmp_path: Path) -> None:
    with answering(patch_answer="none", id_filter="or", page_cap=2) as target:
        run(wiki(), target.url, directory(tmp_path))
        result, sent = run(wiki(), target.url, directory(tmp_path, renamed(5), "renamed.json"))
        assert result.converged and len(result.rounds) == 1, result.failures
        reads = after_writes(sent)
        assert all(s.by_filter for s in reads)
        assert [s.params["startIndex"] for s in reads] == ["1", "3", "5"]  # one chunk, pages of two
        assert changed(stored(target)[0]) == sorted([*ENGINEERING, *SALES][:5])
        assert result.final.notes == []


def test_ids_that_repeat_across_kinds_are_read_back_from_their_own_endpoint(tmp_path: Path) -> None:
    with answering(patch_answer="none", id_filter="or", shared_ids=True) as target:
        result, sent = run(wiki(), target.url, directory(tmp_path))
        assert result.converged and len(result.rounds) == 1, result.failures
        assert set(target.users) & set(target.groups) == {"1", "2"}
        # users' creates answered with the resource; the groups' member PATCHes with 204: groups read back
        [read] = after_writes(sent)
        assert read.path == "/Groups" and sorted(ids_asked([read])) == ["1", "2"]
        users, groups = stored(target)
        assert memberships(users, groups) == {"Engineering": set(ENGINEERING), "Sales": set(SALES)}


@pytest.mark.parametrize("answer", ["partial", "no-members"])
def test_a_partial_patch_answer_is_not_trusted(tmp_path: Path, answer: str) -> None:
    with answering(patch_answer=answer, id_filter="or") as target:
        run(wiki(), target.url, directory(tmp_path))

        def change(data: dict[str, Any]) -> None:
            renamed(2)(data)
            group(data, "Engineering")["members"].remove(user(data, "lee.gu@contoso.com")["id"])
            group(data, "Sales")["members"].append(user(data, "lee.gu@contoso.com")["id"])

        result, sent = run(wiki(), target.url, directory(tmp_path, change, "changed.json"))
        assert result.converged and len(result.rounds) == 1, result.failures
        read = {rid for s in after_writes(sent) for rid in ids_asked([s])}
        patched = {s.path.rsplit("/", 1)[1] for s in sent if s.method == "PATCH"}
        users_patched = {rid for rid in patched if rid in target.users}
        groups_patched = patched - users_patched
        # a body of id and schemas stands for nobody; a group body without members cannot tell membership
        assert read == (patched if answer == "partial" else groups_patched)
        users, groups = stored(target)
        assert memberships(users, groups)["Sales"] == {*SALES, "lee.gu@contoso.com"}
        assert changed(users) == sorted(ENGINEERING[:2])


# -- servers that do not support the filter: one GET each, and a note ---------------------------------------------


@pytest.mark.parametrize("front, why, found", [
    (dict(id_filter="ignored"), "answered with totalResults 10 for 4 ids", 0),
    (dict(id_filter="refused"), "answered HTTP 400", 0),
    (dict(id_filter="dropped"), "got no answer", 0),
    (dict(id_filter="first"), "left out an object that a GET then found", 1),
], ids=["ignores-filter", "refuses-it", "drops-the-connection", "applies-the-first-clause"])
def test_a_server_without_that_filter_is_read_back_one_get_each_and_says_so(tmp_path: Path, front: dict[str, Any],
                                                                            why: str, found: int) -> None:
    with answering(patch_answer="none", **front) as target:
        run(wiki(), target.url, directory(tmp_path))
        result, sent = run(wiki(), target.url, directory(tmp_path, renamed(4), "renamed.json"))
        assert result.converged and len(result.rounds) == 1, result.failures
        reads = after_writes(sent)
        # the probe (sent again only as a retry, when the connection dropped); never trusted, never sent again
        assert len({s.params["filter"] for s in reads if s.by_filter}) == 1
        patched = {s.path for s in sent if s.method == "PATCH"}
        by_id = [s.path for s in reads if s.by_id]  # every object the filtered answer did not show
        assert len(by_id) == len(set(by_id)) == len(patched) - found and set(by_id) <= patched
        [note] = [n for n in result.final.notes if READ_BACK_NOTE in n]
        assert why in note and note.startswith('GET /Users?filter=id eq "')
        users, _ = stored(target)
        assert len(users) == 10 and [s for s in sent if s.method == "POST"] == []  # nobody taken for gone
        assert changed(users) == sorted([*ENGINEERING, *SALES][:4])


def test_a_filtered_read_slow_enough_to_scan_every_object_turns_the_run_to_gets(tmp_path: Path,
                                                                                 monkeypatch: Any) -> None:
    # A full chunk at the probe's pace would take more than a fifth of the request deadline, and the probe took
    # longer than a page of the full read: reading by GET is cheaper on this server.
    monkeypatch.setenv("RECONCILER_REQUEST_TIMEOUT", "10")
    with answering(patch_answer="none", id_filter="or", filter_delay=0.5) as target:
        run(wiki(), target.url, directory(tmp_path))
        result, sent = run(wiki(), target.url, directory(tmp_path, renamed(8), "renamed.json"))
        assert result.converged and len(result.rounds) == 1, result.failures
        reads = after_writes(sent)
        [probe] = [s for s in reads if s.by_filter]
        assert len(ids_asked([probe])) == 5  # the probe's answer is used; the three others are read by GET
        assert len([s for s in reads if s.by_id]) == 3
        [note] = [n for n in result.final.notes if READ_BACK_NOTE in n]
        assert "for 5 id(s), longer than a page of the full read (the target seems to scan every object" in note
        assert changed(stored(target)[0]) == sorted([*ENGINEERING, *SALES][:8])


# -- deletes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("leavers", [1, 3])
def test_deleted_objects_are_verified_gone(url: str, tmp_path: Path, leavers: int) -> None:
    run(wiki(), url, directory(tmp_path))
    gone = SALES[:leavers]

    def leave(data: dict[str, Any]) -> None:
        for upn in gone:
            group(data, "Sales")["members"].remove(user(data, upn)["id"])

    result, sent = run(wiki(), url, directory(tmp_path, leave, "left.json"))
    assert result.converged and len(result.rounds) == 1, result.failures
    assert result.done() == {"delete": leavers, "update": 1}
    user_reads = [s for s in after_writes(sent) if s.path.startswith("/Users")]
    if leavers == 1:
        [read] = user_reads  # a GET answered 404
        assert read.by_id
    else:
        [read] = user_reads  # left out of a filtered answer
        assert read.by_filter and len(ids_asked([read])) == leavers
    users = listing(url)
    assert sorted(u["userName"] for u in users) == sorted({*ENGINEERING, *SALES} - set(gone))
    assert memberships(users, listing(url, "Groups"))["Sales"] == set(SALES) - set(gone)


def test_deletes_on_a_server_without_the_filter_are_verified_by_404(tmp_path: Path) -> None:
    with answering(patch_answer="none", id_filter="refused") as target:
        run(wiki(), target.url, directory(tmp_path))

        def leave(data: dict[str, Any]) -> None:
            for upn in SALES[:3]:
                group(data, "Sales")["members"].remove(user(data, upn)["id"])

        result, sent = run(wiki(), target.url, directory(tmp_path, leave, "left.json"))
        assert result.converged and result.done() == {"delete": 3, "update": 1}, result.failures
        deleted = sorted(s.path for s in sent if s.method == "DELETE")
        assert sorted(s.path for s in after_writes(sent) if s.by_id and s.path.startswith("/Users")) == deleted
        assert sorted(u["userName"] for u in target.users.values()) == sorted({*ENGINEERING, SALES[3]})


# -- the rules, as values -----------------------------------------------------------------------------------------


ASKED = ["externalId", "userName", "emails", "active", "title", f"{ENTERPRISE_USER}:department"]
BEFORE = {"id": "7", "schemas": [CORE_USER], "userName": "a@contoso.com", "externalId": "x", "active": True,
          "emails": [{"type": "work", "value": "a@contoso.com"}], "title": "Old",
          ENTERPRISE_USER: {"department": "Sales"}}


def patched(answer: dict[str, Any] | None, operations: list[dict[str, Any]],
            before: dict[str, Any] | None = BEFORE) -> dict[str, Any] | None:
    report = ApplyReport()
    report.answer("User", "7", answer, operations=operations)
    return report.answered("User", "7", before, ASKED)


def test_a_full_patch_answer_stands_and_a_partial_one_does_not() -> None:
    title = [{"op": "replace", "path": "title", "value": "New"}]
    full = {**BEFORE, "title": "New", "meta": {"version": 'W/"2"'}}
    assert patched(full, title) == full
    assert patched({k: v for k, v in full.items() if k != "emails"}, title) is None  # an attribute it held
    assert patched({k: v for k, v in full.items() if k != "title"}, title) is None  # the attribute it set
    assert patched({k: v for k, v in full.items() if k != ENTERPRISE_USER}, title) is None
    assert patched({**full, "id": "8"}, title) is None
    assert patched({k: v for k, v in full.items() if k != "schemas"}, title) is None
    assert patched({**full, "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}, title) is None
    assert patched(None, title) is None  # 204
    removed = [{"op": "remove", "path": "title"}]
    assert patched({k: v for k, v in full.items() if k != "title"}, removed) is not None
    extension = [{"op": "replace", "value": {ENTERPRISE_USER: {"department": "HR"}}}]
    assert patched({k: v for k, v in full.items() if k != ENTERPRISE_USER}, extension) is None
    assert patched({**full, "title": "x"}, [{"op": "replace", "path": "bad path!"}]) is None  # cannot tell


def test_a_created_objects_answer_needs_what_its_body_set() -> None:
    body = {"schemas": [CORE_USER], "userName": "b@contoso.com", "externalId": "y", "active": True, "title": ""}
    created = {"id": "9", "schemas": [CORE_USER], "userName": "b@contoso.com", "externalId": "y", "active": True}
    report = ApplyReport()
    report.answer("User", "9", created, body=body, new=True)
    assert report.answered("User", "9", None, ASKED) == created
    report.answer("User", "10", {k: v for k, v in created.items() if k != "active"} | {"id": "10"}, body=body,
                  new=True)
    assert report.answered("User", "10", None, ASKED) is None


def test_a_group_whose_members_changed_stands_only_with_members_listed() -> None:
    asked = ["externalId", "displayName", "members"]
    group_body = {"id": "3", "schemas": [CORE_GROUP], "displayName": "Sales", "externalId": "g"}
    removal = [{"op": "remove", "path": 'members[value eq "7"]'}]
    report = ApplyReport()
    report.answer("Group", "3", group_body, operations=removal, members=True)
    assert report.answered("Group", "3", {**group_body, "members": [{"value": "7"}]}, asked) is None
    report.answer("Group", "3", {**group_body, "members": []}, operations=removal, members=True)
    assert report.answered("Group", "3", {**group_body, "members": [{"value": "7"}]}, asked) is not None
    # a rename's answer without the members the group held does not stand either
    rename = [{"op": "replace", "path": "displayName", "value": "Sales EU"}]
    report.answer("Group", "4", {**group_body, "id": "4", "displayName": "Sales EU"}, operations=rename)
    assert report.answered("Group", "4", {**group_body, "id": "4", "members": [{"value": "7"}]}, asked) is None
    report.answer("Group", "4", None, deleted=True)
    assert report.answered("Group", "4", None, asked) is None


def test_a_bulk_result_keeps_the_resource_its_response_carries() -> None:
    batch = [BulkOperation("POST", "/Users", "c0", {"userName": "a"}), BulkOperation("POST", "/Users", "c1", {})]
    resource = {"id": "5", "schemas": [CORE_USER], "userName": "a"}
    answer = {"Operations": [
        {"bulkId": "c0", "method": "POST", "status": "201", "location": "https://t/Users/5", "response": resource},
        {"bulkId": "c1", "method": "POST", "status": "400",
         "response": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "no userName"}}]}
    ok, refused = parse_bulk_response(answer, batch)
    assert ok.id == "5" and ok.resource == resource
    assert refused.resource is None and refused.detail == "no userName"
