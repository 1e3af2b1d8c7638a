"""Two applies started at once, from two working folders (two machines, in effect: no shared lock folder), against
one target and one Azure Blob state: the blob lease lets one converge while the other waits, naming the holder;
the target ends with exactly the expected users, none twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciler.state.store import list_states, open_backend
from reconciler.target.serve import serving_target
from tests.azurite import container_name
from tests.reconcile_helpers import ROOT, TOKEN, atea, by_username, converge, directory, many_users

# Users beside the sample's, written one request each (--no-bulk): the first apply still runs when the second asks
# for the lease.
USERS = 150


def working_folder(base: Path) -> tuple[Path, str]:
    """A checkout as a pipeline has one: manifests/, the sample snapshot they name, and a larger snapshot for
    ``--directory``."""
    (base / ".git").mkdir(parents=True)  # the work tree's root, which manifests' relative paths stay inside
    shutil.copytree(ROOT / "manifests", base / "manifests")
    (base / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "directory.json", base / "examples" / "directory.json")
    return base, directory(base, lambda data: many_users(data, USERS))


def test_two_applies_at_once_share_one_blob_state(url: str, azurite: str, tmp_path: Path, monkeypatch: Any) -> None:
    state = f"azblob://{container_name()}/pipelines/prod"
    runs = []
    for label in ("one", "two"):
        folder, snapshot = working_folder(tmp_path / label)
        env = {**os.environ, "ATEA_SCIM_TOKEN": TOKEN, "AZURE_STORAGE_CONNECTION_STRING": azurite,
               "RECONCILER_STATE_DIR": str(folder / "local-state")}
        env.pop("RECONCILER_STATE", None)
        command = [sys.executable, "-m", "reconciler", "apply", "manifests/atea.yaml", "--directory", snapshot,
                   "--target", url, "--state", state, "--lock-wait", "300", "--no-bulk"]
        runs.append(subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True))
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, f"exit {run.returncode}: {err}{out}"
        assert "Traceback" not in err and "converged" in out and "NOT converged" not in out, err + out

    waited = [i for i, (_, err) in enumerate(outputs) if "waiting" in err]
    assert len(waited) == 1, [err for _, err in outputs]  # one converged while the other waited on the lease
    waiter, holder = waited[0], 1 - waited[0]
    line = next(line for line in outputs[waiter][1].splitlines() if "waiting" in line)
    assert f"pid {runs[holder].pid} on " in line and "(apply atea)" in line, line

    with serving_target(token=TOKEN) as reference:  # what one apply alone makes of the same snapshot
        converge(atea(), reference.url, directory(tmp_path, lambda data: many_users(data, USERS)), monkeypatch,
                 stateless=True)
        expected = set(by_username(reference.url))
    assert set(by_username(url)) == expected  # by_username also fails on any userName held twice
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    saved = list_states(open_backend(state))
    assert [s.app for s in saved] == ["atea"] and len(saved[0].entries("User")) == len(expected)
