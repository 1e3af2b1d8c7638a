"""``make demo``: the main job on the embedded defaults, narrated step by step.

It starts the embedded SCIM target on a free loopback port, plans the Atea example over the sample directory,
applies it, plans again (no changes), then changes the directory (an unassignment, a renamed user, a new hire) and
shows the drift being corrected. Last, a user is purged from the directory altogether: the provisioning state's
ledger (kept in a temporary folder) still names his account, so the next apply disables it. Everything it starts
or writes is gone when it ends.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shlex
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from reconciler.cli import main as cli
from reconciler.target.serve import serving_target

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "manifests/atea.yaml"
SAMPLE = "examples/directory.json"
NEW_HIRE_ID = "7f1c9a52-3d0e-4c55-9e61-5b2f4e8d0a17"


class Demo:
    def __init__(self, console: Console, workdir: Path, url: str) -> None:
        self.console = console
        self.workdir = workdir
        self.url = url

    def step(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def run(self, *args: str, expect: Sequence[int] = (0,)) -> int:
        shown = " ".join(shlex.quote(a) for a in args)
        self.console.print(f"[dim]$ reconciler {shown}[/dim]", highlight=False)
        code = cli(list(args))
        if code not in expect:
            raise SystemExit(f"demo: 'reconciler {shown}' exited {code}")
        self.console.print(f"[dim](exit {code})[/dim]")
        return code

    def changed_directory(self) -> str:
        data: dict[str, Any] = json.loads((ROOT / SAMPLE).read_text())
        changed = copy.deepcopy(data)
        users = {u["userPrincipalName"]: u for u in changed["users"]}
        groups = {g["displayName"]: g for g in changed["groups"]}
        groups["Atea Users"]["members"].remove(users["alex.wilber@contoso.com"]["id"])
        users["megan.bowen@contoso.com"]["surname"] = "Bowen-Hughes"
        changed["users"].append({
            "id": NEW_HIRE_ID, "userPrincipalName": "nora.lindqvist@contoso.com", "mail": "nora.lindqvist@contoso.com",
            "givenName": "Nora", "surname": "Lindqvist", "displayName": "Nora Lindqvist",
            "mailNickname": "noralindqvist", "preferredLanguage": "sv-SE", "accountEnabled": True,
            "department": "Engineering", "jobTitle": "Engineer", "mobilePhone": None, "employeeId": "100042"})
        groups["Atea Users"]["members"].append(NEW_HIRE_ID)
        path = self.workdir / "directory-changed.json"
        path.write_text(json.dumps(changed, indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path)

    def purged_directory(self, changed: str, upn: str) -> str:
        """``changed`` without ``upn``: purged, gone even from the deleted items."""
        data: dict[str, Any] = json.loads(Path(changed).read_text())
        gone = next(u["id"] for u in data["users"] if u["userPrincipalName"] == upn)
        data["users"] = [u for u in data["users"] if u["id"] != gone]
        for group in data["groups"]:
            group["members"] = [m for m in group["members"] if m != gone]
        path = self.workdir / "directory-purged.json"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path)


def main() -> int:
    console = Console()
    token = secrets.token_urlsafe(24)
    os.environ["ATEA_SCIM_TOKEN"] = token  # the manifest's tokenEnv; the embedded target accepts this token
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-") as workdir, serving_target(token=token) as server:
        demo = Demo(console, Path(workdir), server.url)
        os.environ["RECONCILER_STATE"] = str(Path(workdir) / "state")  # the provisioning state, gone at the end
        console.print(f"Embedded SCIM target (scim2-server) on {server.url}; token in $ATEA_SCIM_TOKEN; "
                      f"provisioning state in {os.environ['RECONCILER_STATE']}.")
        target = ("--target", server.url)
        demo.step("1. Validate the manifests")
        demo.run("validate")
        demo.step("2. Plan Atea over the sample directory: every assigned, in-scope user is new")
        demo.run("plan", MANIFEST, "--directory", SAMPLE, *target, "--detailed-exitcode", expect=(2,))
        demo.step("3. Apply: create, then read back until the target matches")
        log = Path(workdir) / "provisioning.jsonl"
        demo.run("apply", MANIFEST, "--directory", SAMPLE, *target, "--log", str(log))
        demo.step("4. Plan again: nothing to change")
        demo.run("plan", MANIFEST, "--directory", SAMPLE, *target, "--detailed-exitcode")
        demo.step("5. The directory changes: Alex is unassigned, Megan is renamed, Nora is hired")
        changed = demo.changed_directory()
        demo.run("plan", MANIFEST, "--directory", changed, *target, "--detailed-exitcode", expect=(2,))
        demo.step("6. Apply corrects the drift")
        demo.run("apply", MANIFEST, "--directory", changed, *target, "--log", str(log))
        demo.run("plan", MANIFEST, "--directory", changed, *target, "--detailed-exitcode")
        demo.step("7. Diego leaves and is purged from the directory: the ledger still names his account")
        purged = demo.purged_directory(changed, "diego.siciliani@contoso.com")
        demo.run("plan", MANIFEST, "--directory", purged, *target, "--detailed-exitcode", expect=(2,))
        demo.run("apply", MANIFEST, "--directory", purged, *target, "--log", str(log))
        demo.run("state", "show", "atea", *target)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        statuses = Counter(r["status"] for r in records)
        last_write = next(r for r in reversed(records) if r["status"] == "Success")
        console.print(f"Provisioning log: {len(records)} records with Entra's fields "
                      f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), e.g. "
                      f"{json.dumps({k: last_write[k] for k in ('action', 'status', 'sourceIdentity')})}",
                      highlight=False)
    console.print("[bold green]Demo complete:[/bold green] the target was stopped and the temporary files removed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
