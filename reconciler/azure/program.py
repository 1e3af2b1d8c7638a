"""The Pulumi program: every manifest in the stack's ``manifests`` folder becomes one :class:`EnterpriseApp`.

``__main__.py`` calls :func:`main`; the offline listing (:mod:`reconciler.azure.declared`) and the tests call
:func:`declare` with the manifests and a token source of their own. The optional stack config ``imports``
(``{APP: {LOGICAL_NAME: IMPORT_ID}}``, set by the script ``reconciler import --stack-imports`` writes) names
existing objects each app adopts instead of creating.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pulumi

from reconciler.azure.component import EnterpriseApp
from reconciler.errors import ManifestError
from reconciler.manifest import LoadedManifest, load_manifests
from reconciler.manifest.model import Manifest

DEFAULT_MANIFESTS = "manifests"

TokenSource = Callable[[Manifest], pulumi.Output[str]]
Imports = Mapping[str, Mapping[str, str]]


def config_token(config: pulumi.Config) -> TokenSource:
    """The SCIM token of an ``entra``-engine app: the secret config key named like its ``tokenEnv`` variable."""
    return lambda manifest: config.require_secret(manifest.provisioning.target.token_env)


def config_imports(config: pulumi.Config) -> dict[str, dict[str, str]]:
    """The stack config ``imports``, checked for its shape: app -> logical name -> import id (text)."""
    value = config.get_object("imports")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(names, dict) and all(isinstance(i, str) and i for i in names.values())
            for names in value.values()):
        raise pulumi.RunError("stack config imports: expected {APP: {LOGICAL_NAME: IMPORT_ID}}, as "
                              "'pulumi config set --path imports.APP.LOGICAL_NAME IMPORT_ID' sets it")
    return value


def declare(loaded: Sequence[LoadedManifest], token: TokenSource,
            imports: Imports | None = None) -> dict[str, EnterpriseApp]:
    imports = imports or {}
    names = {item.manifest.name for item in loaded}
    for app in imports:
        if app not in names:
            raise pulumi.RunError(f"stack config imports.{app}: no manifest is named {app!r}")
    apps = {}
    for item in loaded:
        manifest = item.manifest
        scim_token = token(manifest) if manifest.provisioning.engine == "entra" else None
        apps[manifest.name] = EnterpriseApp(manifest, scim_token=scim_token,
                                            imports=dict(imports.get(manifest.name, {})))
    return apps


def export(apps: dict[str, EnterpriseApp]) -> None:
    for name, app in apps.items():
        pulumi.export(name, {
            "clientId": app.client_id,
            "servicePrincipalObjectId": app.service_principal_object_id,
            "roleIds": app.role_ids,
        })


def load(folder: str) -> list[LoadedManifest]:
    """The manifests, or a clean stop with the loader's FILE:LINE:COL lines (no traceback)."""
    try:
        return load_manifests([folder])
    except ManifestError as error:
        raise pulumi.RunError("invalid manifests:\n" + "\n".join(error.lines())) from None


def main() -> None:
    config = pulumi.Config()
    loaded = load(config.get("manifests") or DEFAULT_MANIFESTS)
    export(declare(loaded, config_token(config), config_imports(config)))
