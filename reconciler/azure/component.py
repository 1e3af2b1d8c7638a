"""One enterprise application on the Entra side, as a Pulumi component declared from one manifest.

Children: the application with its app roles, the service principal (the enterprise app), one app role assignment
per manifest assignment, and, when ``provisioning.engine`` is ``entra``, Entra's synchronization secret and job, the
job's schema (the manifest's mappings, scope and flow types: :mod:`reconciler.azure.schema_provider`) and the job's
start. Such a job is created disabled and started only once its schema is applied, so it never runs on the
template's defaults. An ``entra``-engine custom app is instantiated from the non-gallery application template
(Entra's provisioning needs an app made from a template), a gallery app from its ``galleryTemplateId``.
The component's own inputs are the manifest's provisioning settings that policies check (scope, matching and
filterable attributes, deletion threshold), so CrossGuard sees them beside the resources.

``imports`` (logical name -> import id, the stack config ``imports.APP`` written by ``reconciler import
--stack-imports``) adopts existing objects instead of creating them: the application, the service principal, the
assignments and the job. The synchronization secret has no import (its create writes the keys it declares, as any
later update does), and the schema resource reads and merges the live schema on create.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_azuread as azuread

from reconciler.azure.ids import assignment_names, role_id
from reconciler.azure.principals import Principals
from reconciler.azure.schema_provider import SynchronizationJobStart, SynchronizationSchema
from reconciler.entra.schema import compile_schema
from reconciler.manifest.model import Manifest, Mapping
from reconciler.policy.rules import NOTIFICATION_SETTINGS_KEY, SECRET_TOKEN_KEY

TYPE = "reconciler:azure:EnterpriseApp"
CUSTOM_JOB_TEMPLATE = "scim"
NON_GALLERY_TEMPLATE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"   # Entra's "non-gallery application" template


class EnterpriseApp(pulumi.ComponentResource):
    """Outputs: ``client_id``, ``service_principal_object_id`` and ``role_ids`` (role value -> app role id)."""

    client_id: pulumi.Output[str]
    service_principal_object_id: pulumi.Output[str]
    role_ids: dict[str, str]

    def __init__(self, manifest: Manifest, *, scim_token: pulumi.Input[str] | None = None,
                 imports: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, manifest.name, component_props(manifest), opts)
        name = manifest.name
        gallery = manifest.gallery_template_id is not None
        # A reconciler-engine custom app stays a plain registration: adding a template would replace it.
        template_id = manifest.gallery_template_id or (
            NON_GALLERY_TEMPLATE if manifest.provisioning.engine == "entra" else None)
        child = pulumi.ResourceOptions(parent=self)
        principals = Principals(self)
        owners = [principals.owner(o) for o in manifest.owners]
        self.role_ids = {r.value: role_id(name, r.value) for r in manifest.roles}
        logical_assignments = assignment_names(name, manifest.assignments)
        imports = imports or {}
        _check_imports(manifest, logical_assignments, imports)

        application = azuread.Application(
            f"{name}-app",
            display_name=manifest.display_name,
            description=manifest.description,
            template_id=template_id,
            owners=owners,
            app_roles=[
                azuread.ApplicationAppRoleArgs(
                    id=self.role_ids[r.value],
                    value=r.value,
                    display_name=r.display_name,
                    description=r.description or r.display_name,
                    allowed_member_types=list(r.allowed_member_types),
                    enabled=r.enabled,
                )
                for r in manifest.roles
            ],
            feature_tags=[azuread.ApplicationFeatureTagArgs(enterprise=True, gallery=gallery)],
            opts=_adopting(child, imports, f"{name}-app"),
        )
        service_principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=application.client_id,
            use_existing=template_id is not None or None,  # instantiating a template already created it
            app_role_assignment_required=manifest.provisioning.scope == "assigned",
            notification_email_addresses=[manifest.notification_email],
            owners=owners,
            feature_tags=[azuread.ServicePrincipalFeatureTagArgs(enterprise=True, gallery=gallery)],
            opts=_adopting(child, imports, f"{name}-sp"),
        )
        for logical, assignment in zip(logical_assignments, manifest.assignments, strict=True):
            azuread.AppRoleAssignment(
                logical,
                app_role_id=self.role_ids[assignment.role],
                principal_object_id=principals.object_id(assignment.principal_type, assignment.principal),
                resource_object_id=service_principal.object_id,
                opts=_adopting(child, imports, logical),
            )
        if manifest.provisioning.engine == "entra":
            if scim_token is None:
                raise ValueError(f"app {name!r}: provisioning.engine is 'entra' but no SCIM token was given")
            _synchronization(manifest, service_principal, scim_token, child, imports)

        self.client_id = application.client_id
        self.service_principal_object_id = service_principal.object_id
        # Stack policies see a component's outputs, not its inputs: the settings they check are outputs too.
        self.register_outputs({
            **component_props(manifest),
            "assignments": len(manifest.assignments),
            "clientId": self.client_id,
            "servicePrincipalObjectId": self.service_principal_object_id,
            "roleIds": self.role_ids,
        })


def component_props(manifest: Manifest) -> dict[str, object]:
    provisioning = manifest.provisioning
    groups = provisioning.groups.mappings if provisioning.groups.enabled else []
    return {
        "engine": provisioning.engine,
        "scope": provisioning.scope,
        "deprovision": provisioning.deprovision,
        "deletionThreshold": provisioning.deletion_threshold,
        "filterableAttributes": list(provisioning.filterable_attributes),
        "usersMatchingAttributes": _matching(provisioning.users.mappings),
        "groupsMatchingAttributes": _matching(groups),
    }


def _matching(mappings: list[Mapping]) -> list[str]:
    ranked = sorted((m for m in mappings if m.matching is not None), key=lambda m: m.matching or 0)
    return [m.target for m in ranked]


def notification_settings(manifest: Manifest) -> str:
    """Entra's accidental-deletion prevention and failure email, as its ``SyncNotificationSettings`` secret."""
    return json.dumps({
        "Enabled": True,
        "Recipients": manifest.notification_email,
        "DeleteThresholdEnabled": True,
        "DeleteThresholdValue": manifest.provisioning.deletion_threshold,
    }, separators=(",", ":"))


def importable(manifest: Manifest, logical_assignments: list[str]) -> list[str]:
    """The logical names of the resources an existing object can be imported into."""
    names = [f"{manifest.name}-app", f"{manifest.name}-sp", *logical_assignments]
    return [*names, f"{manifest.name}-sync-job"] if manifest.provisioning.engine == "entra" else names


def _check_imports(manifest: Manifest, logical_assignments: list[str], imports: dict[str, str]) -> None:
    names = importable(manifest, logical_assignments)
    for logical in imports:
        if logical not in names:
            raise pulumi.RunError(f"stack config imports.{manifest.name}: {logical!r} is not a resource of app "
                                  f"{manifest.name!r} that can be imported (these can: {', '.join(names)})")


def _adopting(opts: pulumi.ResourceOptions, imports: dict[str, str], logical: str) -> pulumi.ResourceOptions:
    if logical not in imports:
        return opts
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(import_=imports[logical]))


def _synchronization(manifest: Manifest, service_principal: azuread.ServicePrincipal,
                     scim_token: pulumi.Input[str], child: pulumi.ResourceOptions,
                     imports: dict[str, str]) -> None:
    provisioning = manifest.provisioning
    credentials = [
        azuread.SynchronizationSecretCredentialArgs(key="BaseAddress", value=provisioning.target.url),
        # The SDK does not mark credentials secret: without Output.secret the token would sit in state in clear.
        azuread.SynchronizationSecretCredentialArgs(key=SECRET_TOKEN_KEY, value=pulumi.Output.secret(scim_token)),
        azuread.SynchronizationSecretCredentialArgs(key=NOTIFICATION_SETTINGS_KEY,
                                                    value=notification_settings(manifest)),
        azuread.SynchronizationSecretCredentialArgs(key="SyncAll",
                                                    value="true" if provisioning.scope == "all" else "false"),
        azuread.SynchronizationSecretCredentialArgs(
            key="SkipOutOfScopeDeletions", value="True" if provisioning.skip_out_of_scope_deletions else "False"),
    ]
    secret = azuread.SynchronizationSecret(
        f"{manifest.name}-sync-secret",
        service_principal_id=service_principal.id,
        credentials=credentials,
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(additional_secret_outputs=["credentials"])),
    )
    template_id = provisioning.job_template_id or CUSTOM_JOB_TEMPLATE
    job = azuread.SynchronizationJob(
        f"{manifest.name}-sync-job",
        service_principal_id=service_principal.id,
        template_id=template_id,
        # Disabled until the schema is applied; SynchronizationJobStart starts it, and the provider must not pause
        # it again on the next update.
        enabled=False,
        opts=_adopting(pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[secret],
                                                                                  ignore_changes=["enabled"])),
                       imports, f"{manifest.name}-sync-job"),
    )
    job_id = job.id.apply(lambda value: value.rsplit("/", 1)[-1])   # /servicePrincipals/{sp}/synchronization/jobs/{id}
    endpoint = provisioning.directory.graph.endpoint
    schema = SynchronizationSchema(
        f"{manifest.name}-sync-schema",
        service_principal_id=service_principal.object_id,
        job_id=job_id,
        template_id=template_id,
        graph_endpoint=endpoint,
        managed=json.dumps(compile_schema(manifest), separators=(",", ":")),
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[job, secret])),
    )
    SynchronizationJobStart(
        f"{manifest.name}-sync-start",
        service_principal_id=service_principal.object_id,
        job_id=job_id,
        graph_endpoint=endpoint,
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[schema])),
    )
