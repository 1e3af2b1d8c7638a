"""The Pulumi mock harness: run the program under Pulumi's mocks, no engine, no cloud, no credentials.

The result (a :class:`~reconciler.azure.listing.Declaration`, plain data) lists every resource the program
declares (type, logical name, parent, inputs) in a fixed order, with secret values masked, so that two git
revisions can be listed and diffed (the pull-request preview of the Azure side). Values Entra would compute are
shown as references (``${atea-sp.objectId}``) and principals as lookups (``${user adele.vance@contoso.com}``): the
listing is what the manifests ask for, not what a tenant holds.

The same run applies the policy rules to the resources, with the secret markers that CrossGuard's SDK loses.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings

from reconciler.azure.listing import Declaration, DeclaredResource, masked_inputs
from reconciler.manifest import LoadedManifest, load_manifests
from reconciler.policy.resources import Subject, check_stack

OFFLINE_TOKEN = "offline-placeholder-token"  # masked in every listing; offline there is no real token
DYNAMIC_PROVIDER_KEY = "__provider"

Lookup = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]

_LOOKUPS = {
    "azuread:index/getUser:getUser": ("user", ("userPrincipalName", "objectId", "mail", "mailNickname")),
    "azuread:index/getGroup:getGroup": ("group", ("displayName", "objectId", "mailNickname")),
}
# Computed attributes of each type, answered by the mocks as references.
_COMPUTED = {
    "azuread:index/application:Application": ("clientId", "objectId"),
    "azuread:index/servicePrincipal:ServicePrincipal": ("objectId", "applicationTenantId"),
}


def placeholder_lookup(token: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
    """The offline answer to getUser/getGroup: the principal as the manifest names it."""
    kind, keys = _LOOKUPS[token]
    ref = next((str(args[k]) for k in keys if args.get(k)), "?")
    return {"objectId": f"${{{kind} {ref}}}", "id": f"${{{kind} {ref}}}"}


class Recorder(pulumi.runtime.Mocks):
    """Mocks that record every registration; lookups are answered by ``lookup`` (token, args) -> result."""

    def __init__(self, lookup: Lookup = placeholder_lookup) -> None:
        self.lookup = lookup
        self.registrations: list[Registration] = []
        # (type, logical name) -> outputs: a custom resource's state as answered, a component's registered
        # outputs; what the engine hands stack policies
        self.outputs: dict[tuple[str, str], Mapping[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = {k: _unwrap(v) for k, v in args.inputs.items()}
        for attribute in _COMPUTED.get(args.typ, ()):
            state.setdefault(attribute, f"${{{args.name}.{attribute}}}")
        return f"${{{args.name}.id}}", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token not in _LOOKUPS:
            raise NotImplementedError(f"no offline answer for {args.token}")
        return dict(self.lookup(args.token, args.args)), []


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: Mapping[str, Any] = field(repr=False)  # unwrapped: may hold secret values
    secret_props: frozenset[str]
    secret_outputs: tuple[str, ...]
    dependencies: tuple[str, ...] = ()   # logical names: depends_on, and the resources whose outputs it takes
    ignore_changes: tuple[str, ...] = ()
    import_id: str | None = None   # the import_ resource option: an existing object to adopt


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps what ``Mocks.new_resource`` is not told: the parent, the secret markers, additionalSecretOutputs."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            raw = rpc.deserialize_properties(request.object)
            raw.pop(DYNAMIC_PROVIDER_KEY, None)  # a dynamic resource's pickled provider: code, not configuration
            parent = request.parent.rsplit("::", 1)[-1] if request.parent else None
            if parent is not None and request.parent.split("::")[-2].endswith("pulumi:pulumi:Stack"):
                parent = None
            self.recorder.registrations.append(Registration(
                type=request.type,
                name=request.name,
                parent=parent,
                custom=bool(request.custom),
                inputs={k: _unwrap(v) for k, v in raw.items()},
                secret_props=frozenset(k for k, v in raw.items() if rpc.is_rpc_secret(v)),
                secret_outputs=tuple(request.additionalSecretOutputs),
                dependencies=tuple(sorted(urn.rsplit("::", 1)[-1] for urn in request.dependencies)),
                ignore_changes=tuple(request.ignoreChanges),
                import_id=request.importId or None,
            ))
        response = super().RegisterResource(request)
        if request.custom and response.urn in self.resources:
            self.recorder.outputs[(request.type, request.name)] = self.resources[response.urn].state
        with contextlib.suppress(RuntimeError):  # no loop when the mock monitor did not need one (the stack)
            _WORKER_LOOPS.add(asyncio.get_event_loop())  # the loop it made for this worker thread
        return response


    def RegisterResourceOutputs(self, request: Any) -> Any:
        _, _, qualified, name = request.urn.split("::", 3)
        if not qualified.endswith("pulumi:pulumi:Stack"):
            raw = rpc.deserialize_properties(request.outputs)
            self.recorder.outputs[(qualified.rsplit("$", 1)[-1], name)] = {k: _unwrap(v) for k, v in raw.items()}
        return super().RegisterResourceOutputs(request)


# Pulumi's mock monitor gives each worker thread an event loop and never closes it; left to interpreter teardown,
# closing them prints "Exception ignored ... Invalid file descriptor". Close them at exit, while that still works.
_WORKER_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


@atexit.register
def _close_worker_loops() -> None:
    for loop in list(_WORKER_LOOPS):
        if not loop.is_running() and not loop.is_closed():
            loop.close()


def use_mocks(recorder: Recorder, *, stack: str = "offline", preview: bool = False) -> None:
    """Point the (process-global) Pulumi runtime at ``recorder``, with a fresh root stack."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:  # e.g. after asyncio.run() elsewhere in this process
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())
    settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(recorder, project="reconciler", stack=stack, preview=preview,
                             monitor=RecordingMonitor(recorder))


def run_under_mocks(program: Callable[[], Any], recorder: Recorder, *, preview: bool = False) -> None:
    """Run ``program`` on fresh mocks and wait for everything it declares."""
    use_mocks(recorder, preview=preview)
    pulumi.runtime.test(program)()


def declared(loaded: Sequence[LoadedManifest], *, lookup: Lookup = placeholder_lookup) -> Declaration:
    """The resources ``loaded`` declares, sorted by (type, name), secrets masked; and the policy violations."""
    from reconciler.azure.program import declare

    recorder = Recorder(lookup)

    def program() -> None:
        declare(loaded, lambda _manifest: pulumi.Output.secret(OFFLINE_TOKEN))

    run_under_mocks(program, recorder)
    registrations = sorted(recorder.registrations, key=lambda r: (r.type, r.name))
    resources = [DeclaredResource(r.type, r.name, r.parent, masked_inputs(r.inputs, r.secret_props), r.secret_outputs)
                 for r in registrations]
    subjects = [Subject(r.type, r.name, r.inputs, r.parent, r.secret_outputs, r.secret_props) for r in registrations]
    return Declaration(resources, check_stack(subjects))


def declared_paths(paths: Sequence[str | os.PathLike[str]] = ("manifests",)) -> Declaration:
    """Load the manifests under ``paths`` (raising ManifestError when invalid) and list what they declare."""
    return declared(load_manifests(paths))


def _unwrap(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return _unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only doubles; the manifests have integers
    return value
