"""Matching: which live SCIM object, if any, stands for a directory object. Pure.

The vocabulary:

- **owned**: the live object's ``externalId`` equals the directory object's id, exactly (case-sensitive). That is
  the only mark of ownership: a foreign object whose ``externalId`` merely looks like a directory id (another
  case, a prefix, a GUID of another tenant) is not ours.
- **matched**: not owned, but equal on a matching attribute, tried in precedence order; the first attribute that
  finds exactly one live object wins (Entra's rule). A matched object is *adopted* (its ``externalId`` is set) only
  when it is **adoptable** under ``provisioning.adopt``: ``unclaimed`` (the default) when it carries no
  ``externalId`` (absent, null or ""), ``any`` whatever it carries (a migration from another system), ``none``
  never. A match that is not adoptable is a conflict: another system's account is never taken over by default.
- **ambiguous**: a matching value finds several live objects; nothing is touched and the plan says why.
- **unmanaged**: everything else; never read further, never written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.scim.normalize import SchemaIndex, matching_key, values_at
from reconciler.scim.paths import TargetPath, parse_path


@dataclass(frozen=True)
class Match:
    """The outcome of matching one directory object: ``how`` is owned, matched, ambiguous, refused (matched but not
    adoptable under the adopt policy) or none."""

    how: str
    live: Mapping[str, Any] | None = None
    detail: str = ""


class LiveIndex:
    """Live objects of one kind, indexed by id, by externalId and by every matching attribute's values."""

    def __init__(self, resources: Iterable[Mapping[str, Any]], matching_paths: Sequence[str],
                 schemas: SchemaIndex | None = None) -> None:
        self.schemas = schemas or SchemaIndex.rfc_defaults()
        self.by_id: dict[str, Mapping[str, Any]] = {}
        self.by_external: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self.by_path: dict[str, dict[Any, list[Mapping[str, Any]]]] = {p: defaultdict(list) for p in matching_paths}
        for resource in resources:
            rid = resource.get("id")
            if not isinstance(rid, str):
                continue
            self.by_id[rid] = resource
            external = resource.get("externalId")
            if isinstance(external, str) and external:
                self.by_external[external].append(resource)
            for text in matching_paths:
                path = parse_path(text)
                for value in values_at(resource, path):
                    self.by_path[text][self._key(path, value, resource)].append(resource)

    def _key(self, path: TargetPath, value: Any, resource: Mapping[str, Any]) -> Any:
        return matching_key(path, value, resource, self.schemas)

    def owned_by(self, source_id: str) -> list[Mapping[str, Any]]:
        return self.by_external.get(source_id, [])

    def matches(self, text: str, value: Any, kind_schema: str) -> list[Mapping[str, Any]]:
        """The live objects whose ``text`` path holds ``value``, compared as the schema says."""
        key = self._key(parse_path(text), value, {"schemas": [kind_schema]})
        return self.by_path.get(text, {}).get(key, [])

    def match(self, source_id: str, matching: Sequence[tuple[str, Any]], kind_schema: str) -> Match:
        owned = self.owned_by(source_id)
        if len(owned) == 1:
            return Match("owned", owned[0])
        if len(owned) > 1:
            ids = ", ".join(sorted(str(o.get("id")) for o in owned))
            return Match("ambiguous", detail=f"{len(owned)} target objects carry externalId {source_id!r} ({ids})")
        for text, value in matching:
            found = self.matches(text, value, kind_schema)
            if len(found) == 1:
                return Match("matched", found[0], detail=f"{text} eq {value!r}")
            if len(found) > 1:
                ids = ", ".join(sorted(str(o.get("id")) for o in found))
                return Match("ambiguous", detail=f"{len(found)} target objects have {text} {value!r} ({ids})")
        return Match("none")


ADOPT_POLICIES = ("unclaimed", "any", "none")


def adoption_refusal(live: Mapping[str, Any], source_id: str | None, policy: str) -> str | None:
    """Why ``live``, matched to directory object ``source_id``, may not be adopted under ``policy``; None if it may.

    An object already owned (its ``externalId`` is ``source_id``) is ours whatever the policy says.
    """
    if policy not in ADOPT_POLICIES:
        raise ValueError(f"unknown adopt policy {policy!r} (expected one of {', '.join(ADOPT_POLICIES)})")
    external = live.get("externalId")
    if source_id is not None and external == source_id:
        return None
    if policy == "none":
        return "provisioning.adopt is none (no existing account is adopted; adopt: unclaimed or any allows it)"
    if policy == "any" or external is None or external == "":
        return None
    return (f"carries externalId {external!r}, not this directory's (to migrate such accounts, set "
            "provisioning.adopt: any for one apply)")
