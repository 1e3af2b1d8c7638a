"""Compose a preview: validate the working tree, list both revisions' declared resources, plan each app live."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.azure.listing import Declaration
from reconciler.errors import BaseUnavailable, ManifestError, Problem, ReconcilerError
from reconciler.manifest import LoadedManifest
from reconciler.manifest.load import load_bytes
from reconciler.preview.azure_side import azure_side
from reconciler.preview.entra_side import entra_side, is_entra, switched
from reconciler.preview.gitrev import manifests_at
from reconciler.preview.mask import PiiMasker
from reconciler.preview.model import AppPreview, Preview, ScimResult
from reconciler.preview.render import LIMIT, Renderer
from reconciler.preview.scim_side import scim_side
from reconciler.report.escape import code_span
from reconciler.secrets import REGISTRY, scrub
from reconciler.validation import validate_paths

# Attributes whose values name a person: with masking on, they are hashed wherever they appear in the comment.
PERSONAL = ("userName", "displayName", "name.", "emails", "nickName", "phoneNumbers", "title")


@dataclass
class PreviewOptions:
    paths: Sequence[str | os.PathLike[str]] = ("manifests",)
    base: str = "HEAD"
    directory: str | None = None
    target: str | None = None
    mask_pii: bool = False
    attachments: list[tuple[str, str]] = field(default_factory=list)
    limit: int = LIMIT
    cwd: Path | None = None


def _load_base(options: PreviewOptions) -> tuple[list[LoadedManifest], str, str]:
    """The base revision's manifests, a label for it, and why they could not be read ("" when they could)."""
    try:
        revision = manifests_at(options.base, options.paths, cwd=options.cwd)
    except BaseUnavailable as error:
        return [], "", str(error)
    loaded: list[LoadedManifest] = []
    problems: list[Problem] = []
    for file in revision.files:
        try:
            loaded.append(load_bytes(file.content, f"{options.base}:{file.path}"))
        except ManifestError as error:
            problems += error.problems
    label = code_span(options.base)
    if revision.short[:7] not in options.base:
        label += f" ({code_span(revision.short)})"
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return [], label, f"the base revision's manifests do not load with this version: {problems[0]}{more}"
    return loaded, label, ""


def build_preview(options: PreviewOptions) -> tuple[Preview, list[LoadedManifest], list[LoadedManifest]]:
    """The preview, with the working tree's and the base's manifests (for the secrets and names they name)."""
    from reconciler.azure.declared import declared  # imports Pulumi: only for previews

    head, problems = validate_paths(options.paths)
    if options.target and len(head) != 1:
        raise ReconcilerError(f"--target names one target, but {len(head)} manifests were given; pass the one "
                              "manifest it is for")
    preview = Preview(problems=problems, attachments=list(options.attachments))
    preview.valid = not any(p.is_error for p in problems)
    base, preview.base_label, preview.azure_reason = _load_base(options)
    base_known = not preview.azure_reason
    if not preview.valid:
        return preview, head, base

    after = declared(head)
    preview.violations = after.violations
    side = None
    if not preview.azure_reason:
        try:
            before = declared(base) if base else Declaration([])
        except ReconcilerError as error:  # the base revision's program fails with this version: say so, go on
            preview.azure_reason = f"the base revision's resources cannot be listed: {' '.join(str(error).split())}"
        else:
            side = azure_side(before, after)
    reviewed = {m.manifest.name: m for m in base} if base_known else None
    # one engine per app: Entra's job provisions an engine entra app, so its target is never planned
    live = scim_side([m for m in head if not is_entra(m)], reviewed, directory=options.directory,
                     target=options.target)
    names = sorted({m.manifest.name for m in head} | {m.manifest.name for m in base} | (side.apps if side else set()))
    in_head = {m.manifest.name: m for m in head}
    at_base = {m.manifest.name: m for m in base}
    for name in names:
        app = AppPreview(name, in_head=name in in_head, azure=side.of(name) if side else None)
        current = in_head.get(name)
        if current is not None and is_entra(current):
            app.entra = entra_side(current, at_base.get(name), base_known=base_known)
        elif current is not None:
            app.scim = live.get(name, ScimResult(reason=""))
        app.switched = switched(current, at_base.get(name))
        preview.apps.append(app)
    return preview, head, base


def masker_for(preview: Preview, manifests: Sequence[LoadedManifest]) -> PiiMasker:
    masker = PiiMasker()
    for loaded in manifests:
        manifest = loaded.manifest
        for assignment in manifest.assignments:
            if assignment.principal_type == "user":
                masker.add(assignment.principal, slugs=True)
        for owner in manifest.owners:
            masker.add(owner, slugs=True)
        masker.add(manifest.notification_email)
    for app in preview.apps:
        plan = app.scim.plan if app.scim else None
        for step in plan.steps if plan else ():
            if step.kind != "User":
                continue
            masker.add(step.display)
            for change in step.shown_changes():
                if change.path.startswith(PERSONAL):
                    masker.add(change.old)
                    masker.add(change.new)
    return masker


def render_preview(options: PreviewOptions) -> tuple[str, Preview]:
    """The comment text (within ``options.limit``, secrets scrubbed) and the preview it shows."""
    preview, head, base = build_preview(options)
    masker = masker_for(preview, [*head, *base]) if options.mask_pii else None
    comment = Renderer(preview, masker=masker, limit=options.limit).render()
    if masker is not None:
        comment = masker.mask(comment)
    token_envs = {m.manifest.provisioning.target.token_env for m in (*head, *base)}
    REGISTRY.register_environment(token_envs, os.environ)
    return scrub(comment), preview
