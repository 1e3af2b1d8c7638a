"""``make demo``: the main job on the embedded defaults, narrated step by step."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reconciler.errors import ReconcilerError
from reconciler.validate import validate_paths

MANIFESTS = Path("manifests")


def show_declared_apps(console: Console) -> bool:
    console.rule("[bold]1. Validate the manifests")
    loaded, problems = validate_paths([MANIFESTS])
    for problem in problems:
        console.print(str(problem), markup=False)
    if any(p.is_error for p in problems):
        return False
    table = Table(title="Declared enterprise apps")
    for column in ("app", "file", "roles", "assignments", "scope", "deprovision", "user mappings", "groups"):
        table.add_column(column)
    for item in loaded:
        m = item.manifest
        p = m.provisioning
        table.add_row(m.name, item.file, ", ".join(r.value for r in m.roles), str(len(m.assignments)), p.scope,
                      p.deprovision, str(len(p.users.mappings)), "on" if p.groups.enabled else "off")
    console.print(table)
    return True


def main() -> int:
    console = Console()
    try:
        ok = show_declared_apps(console)
    except ReconcilerError as error:
        print("\n".join(error.lines()), file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
