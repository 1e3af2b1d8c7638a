"""What scim2-models costs to parse SCIM wire shapes, against plain dicts (json.loads only).

Run: ``.venv/bin/python benchmarks/scim_models.py [N ...]`` (default 1000 and 100000 users).
Prints seconds and microseconds per user for: json.loads alone (what the client does), json.loads plus
``User[EnterpriseUser].model_validate`` per resource, ``ListResponse[...]`` validation of whole pages, and
``model_dump`` back to dicts (what the normalizer would need to compare), and for scale the normalizer's
diff of a converged user.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from scim2_models import EnterpriseUser, ListResponse, User

from reconciler.scim.normalize import diff_resource

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PAGE = 1000


def resource(i: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "id": f"{i:032x}",
        "externalId": f"obj-{i}",
        "meta": {"resourceType": "User", "created": "2026-11-01T10:00:00Z", "lastModified": "2026-11-01T10:00:00Z",
                 "location": f"https://scim.example/v2/Users/{i:032x}", "version": f'W/"{i}"'},
        "userName": f"user{i}@contoso.com",
        "name": {"givenName": "Given", "familyName": f"Family{i}", "formatted": f"Given Family{i}"},
        "active": True,
        "emails": [{"value": f"user{i}@contoso.com", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
        ENTERPRISE: {"employeeNumber": str(i), "department": "Sales"},
    }


def pages(n: int) -> list[bytes]:
    out = []
    for start in range(0, n, PAGE):
        items = [resource(i) for i in range(start, min(n, start + PAGE))]
        out.append(json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                               "totalResults": n, "startIndex": start + 1, "itemsPerPage": len(items),
                               "Resources": items}).encode())
    return out


def timed(label: str, n: int, work: Any) -> float:
    begin = time.perf_counter()
    work()
    elapsed = time.perf_counter() - begin
    print(f"  {label:<46} {elapsed:8.3f} s  {elapsed / n * 1e6:8.1f} us/user")
    return elapsed


def measure(n: int) -> None:
    model = User[EnterpriseUser]
    list_model = ListResponse[User[EnterpriseUser]]
    wire = pages(n)
    print(f"{n} users in {len(wire)} pages of up to {PAGE}:")
    base = timed("json.loads (plain dicts)", n, lambda: [json.loads(p) for p in wire])
    dicts = [r for p in wire for r in json.loads(p)["Resources"]]
    per = timed("+ User[EnterpriseUser].model_validate", n, lambda: [model.model_validate(r) for r in dicts])
    timed("ListResponse[User[EnterpriseUser]] per page", n, lambda: [list_model.model_validate_json(p) for p in wire])
    models = [model.model_validate(r) for r in dicts]
    dump = timed("model_dump back to dicts", n, lambda: [m.model_dump() for m in models])
    desired = [{k: v for k, v in r.items() if k not in ("id", "meta")} for r in dicts]
    timed("normalize.diff_resource (converged, dicts)", n,
          lambda: [diff_resource(d, r) for d, r in zip(desired, dicts, strict=True)])
    print(f"  models cost {(per + dump) / base:.1f}x the plain-dict read\n")


def main(sizes: list[int]) -> None:
    for n in sizes:
        measure(n)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 100_000])
