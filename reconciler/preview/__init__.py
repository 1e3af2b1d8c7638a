"""Pull-request previews: one Markdown comment with what a change would do on both sides.

Vocabulary: the **Azure side** is the declared-resource listing of the base revision against the working tree's
(offline, under Pulumi's mocks, so it needs no credentials); the **SCIM side** is a live plan per app (read-only)
against the base revision's target when its directory and target are reachable, else one line saying why not (a
pull request that changes where the token goes is planned after merge). Safe defaults: a preview never writes
to a target; secrets are scrubbed from the finished text whatever went wrong; personal data is masked on request.

Modules: ``gitrev`` (manifests at a revision), ``azure_side``, ``scim_side``, ``model``, ``mask`` (secrets and
personal data), ``render`` (Markdown within the size limit), ``build`` (composes them).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LIMIT", "MARKER", "PreviewOptions", "build_preview", "render_preview"]


def __getattr__(name: str) -> Any:  # keeps `import reconciler.preview.mask` light (the loop uses it)
    if name in ("PreviewOptions", "build_preview", "render_preview"):
        from reconciler.preview import build

        return getattr(build, name)
    if name in ("LIMIT", "MARKER"):
        from reconciler.preview import render

        return getattr(render, name)
    raise AttributeError(name)
