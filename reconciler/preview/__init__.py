"""Pull-request previews: one Markdown comment with what a change would do on both sides.

Vocabulary: the **Azure side** is the declared-resource listing of the base revision against the working tree's
(offline, under Pulumi's mocks, so it needs no credentials); the **SCIM side** is a live plan per app (read-only)
against the base revision's target when its directory and target are reachable, else one line saying why not (a
pull request that changes where the token goes is planned after merge); an ``engine: entra`` app has the **Entra
side** instead, its job's synchronization-schema diff, base against head (offline: Entra's job provisions it, so
its target is never planned). Safe defaults: a preview never writes to a target; secrets are scrubbed from the
finished text whatever went wrong; personal data is masked on request.

Modules: ``model`` (what a preview found, plain data), ``gitrev`` (manifests at a revision), ``azure_side``,
``scim_side``, ``entra_side``, ``mask`` (secrets and personal data), ``render`` (Markdown within the size limit;
pure, like ``model``), ``build`` (composes them: :func:`~reconciler.preview.build.render_preview`). The package
itself imports nothing, so importing the renderer loads no Pulumi, HTTP client or run engine.
"""
