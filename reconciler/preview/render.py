"""The preview as one Markdown comment: summary first, details in ``<details>`` blocks, never above the limit.

The summary (counts per app and side, the deletion-guard flags, validation and policy results, why a side was not
evaluated) is never trimmed. Details are: problems, then each app's disables and deletes, then its other changes,
then attachments (``pulumi preview --diff``). When the whole would pass the limit, rows are cut from the end and
the comment says how many rows and characters were cut (:mod:`reconciler.report.budget`, shared with
``plan --format markdown``).

Steps are shown through the rows every renderer shows (:mod:`reconciler.report.rows`), with a formatter that
hashes personal data when masking is on; every cell passes :mod:`reconciler.report.escape`.
"""

from __future__ import annotations

from typing import Any

from reconciler.plan import DESTRUCTIVE, Step, step_order
from reconciler.preview.mask import PiiMasker
from reconciler.preview.model import AppPreview, EntraSide, Preview, ResourceChange
from reconciler.report.budget import LIMIT, Block, fit
from reconciler.report.escape import code_span, escape_markdown, pre_text, strip_controls, table_row
from reconciler.report.rows import Formatter, show, step_rows

__all__ = ["LIMIT", "MARKER", "MaskingFormatter", "Renderer"]

MARKER = "<!-- reconciler-preview -->"
MAX_VALUE = 100
EVERY_ROW = "for every row, run `reconciler plan` (text, or `--format json`), or see the workflow's artifacts"


def short(value: Any) -> str:
    return show(value, MAX_VALUE)


def step_key(step: Step) -> tuple[int, int, str, str, str]:
    return (*step_order(step), step.display, step.source_id or step.target_id or "")


class MaskingFormatter(Formatter):
    """Rows for the comment: longer values, and with a ``masker`` a user's names and values as hashes; a step
    with nothing else to show says why it is there."""

    def __init__(self, masker: PiiMasker | None) -> None:
        super().__init__(MAX_VALUE)
        self.masker = masker

    def text(self, text: str) -> str:
        return self.masker.mask(text) if self.masker is not None else text

    def display(self, step: Step) -> str:
        return self.text(step.display) if step.kind == "User" else step.display

    def value(self, step: Step, path: str, value: Any) -> str:
        """A user's attribute values are personal: with masking on, every string becomes its hash."""
        shown = super().value(step, path, value)
        if self.masker is None or step.kind != "User" or path in ("active", "externalId"):
            return shown
        if isinstance(value, str) and value != "[Redact]":
            return self.masker.token(value)
        return self.text(shown)

    def bare(self, step: Step) -> str:
        return self.text(step.reason)


class Renderer:
    """Builds the comment for one :class:`Preview`; with a ``masker``, user names and emails become hashes."""

    def __init__(self, preview: Preview, *, masker: PiiMasker | None = None, limit: int = LIMIT) -> None:
        self.preview = preview
        self.masker = masker
        self.limit = limit
        self.formatter = MaskingFormatter(masker)

    def mask(self, value: str) -> str:
        return self.formatter.text(value)

    def row(self, *cells: str) -> str:
        return table_row(self.mask(c) for c in cells)

    # -- summary -------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        p = self.preview
        lines = [MARKER, "### reconciler preview", ""]
        if p.base_label:
            lines.append(f"Manifests at {p.base_label} compared with this change.")
        lines.append("")
        if not p.valid:
            lines += ["**The manifests are invalid: nothing was previewed.** Fix the problems listed below "
                      "(`reconciler validate`).", ""]
        if p.apps:
            lines += ["| app | Azure: add | change | remove | SCIM: create | update | disable | delete | other |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
            lines += [self._summary_row(app) for app in p.apps]
            lines.append("")
        if p.valid and p.apps and not any(self._changes(app) for app in p.apps):
            evaluated = all((a.scim is not None and a.scim.plan is not None)
                            or (a.entra is not None and not a.entra.reason) for a in p.apps)
            azure = all(a.azure is not None for a in p.apps)
            if evaluated and azure:
                lines += ["No changes on either side.", ""]
            elif azure:
                lines += ["No changes on the Azure side.", ""]
        flags = [flag for app in p.apps for flag in self._flags(app)]
        if flags:
            lines += [*flags, ""]
        lines += self._not_evaluated()
        lines += self._checks()
        return "\n".join(lines) + "\n"

    def _summary_row(self, app: AppPreview) -> str:
        azure = ["-", "-", "-"]
        if app.azure is not None:
            counts = {"add": 0, "change": 0, "remove": 0}
            for change in app.azure:
                counts[change.action] += 1
            azure = [str(counts[k]) for k in ("add", "change", "remove")]
        scim = ["-", "-", "-", "-"]
        other = ""
        plan = app.scim.plan if app.scim else None
        if plan is not None:
            counts = plan.summary()
            scim = [str(counts[k]) for k in ("create", "update", "disable", "delete")]
            extra = [f"{counts[k]} {k}" for k in ("adopt", "conflict") if counts.get(k)]
            other = ", ".join(extra)
        elif app.entra is not None:
            other = (f"Entra's job: {len(app.entra.changes)} schema change(s)" if not app.entra.reason
                     else "Entra's job: schema not compared")
        elif app.scim is not None:
            other = "SCIM not evaluated"
        elif not app.in_head:
            other = "manifest removed"
        if app.switched is not None:
            other = ", ".join(filter(None, [f"engine {app.switched[0]} to {app.switched[1]}", other]))
        return self.row(app.name, *azure, *scim, other)

    @staticmethod
    def _changes(app: AppPreview) -> int:
        plan = app.scim.plan if app.scim else None
        entra = len(app.entra.changes) if app.entra else 0
        return (len(app.azure or ()) + (len(plan.steps) if plan else 0) + entra + (0 if app.in_head else 1)
                + (1 if app.switched else 0))

    def _flags(self, app: AppPreview) -> list[str]:
        flags = []
        name = code_span(app.name)
        plan = app.scim.plan if app.scim else None
        if plan is not None and plan.destructive:
            if plan.destructive > plan.threshold:
                flags.append(f"> :warning: {name}: **{plan.destructive} disable/delete step(s), over the deletion "
                             f"threshold** (deletionThreshold {plan.threshold}): apply stops before any write "
                             "unless `--allow-deletes`.")
            else:
                flags.append(f"> :warning: {name}: {plan.destructive} disable/delete step(s), within the deletion "
                             f"threshold ({plan.threshold}).")
        if plan is not None and plan.summary().get("conflict"):
            flags.append(f"> :x: {name}: {plan.summary()['conflict']} conflict(s): never written; a person must "
                         "resolve them before the app can converge.")
        removes = sum(1 for c in app.azure or () if c.action == "remove")
        if removes:
            flags.append(f"> :warning: {name}: {removes} Azure resource(s) to remove.")
        if not app.in_head:
            flags.append(f"> {name}: the manifest is removed; the reconciler leaves the app's SCIM target as it is "
                         "(nothing there is disabled or deleted).")
        if app.switched == ("reconciler", "entra"):
            flags.append(f"> :warning: {name}: switches from the reconciler to Entra's own synchronization job "
                         "(`provisioning.engine: entra`): the reconciler stops driving its target, and Entra's job "
                         "provisions it with the schema below once `pulumi up` applies it.")
        elif app.switched == ("entra", "reconciler"):
            flags.append(f"> :warning: {name}: switches from Entra's own synchronization job to the reconciler: "
                         "the Pulumi program no longer declares the job, so `pulumi up` removes it; apply with the "
                         "reconciler only after that, so the target never has two engines.")
        return flags

    def _not_evaluated(self) -> list[str]:
        lines = []
        if self.preview.azure_reason:
            lines.append(f"- Azure side not evaluated: {escape_markdown(self.preview.azure_reason)}")
        for app in self.preview.apps:
            if app.scim is not None and app.scim.plan is None:
                lines.append(f"- {code_span(app.name)}: SCIM side not evaluated: "
                             f"{escape_markdown(self.mask(app.scim.reason))}")
            if app.entra is not None and app.entra.reason:
                lines.append(f"- {code_span(app.name)}: Entra's schema not compared: "
                             f"{escape_markdown(self.mask(app.entra.reason))}")
        return [*lines, ""] if lines else []

    def _checks(self) -> list[str]:
        p = self.preview
        errors = sum(1 for x in p.problems if x.is_error)
        warnings = len(p.problems) - errors
        mandatory = sum(1 for v in p.violations if v.rule.mandatory)
        advisory = len(p.violations) - mandatory
        validation = (f"**{errors} error(s)**" if errors else "passed") + (f", {warnings} warning(s)" if warnings
                                                                          else "")
        if not p.valid:
            policies = "not run (the manifests are invalid)"
        elif p.violations:
            policies = f"**{mandatory} mandatory**" if mandatory else "0 mandatory"
            policies += f", {advisory} advisory finding(s)"
        else:
            policies = "no findings"
        return [f"**Validation:** {validation}. **Policies:** {policies}.", ""]

    # -- details -------------------------------------------------------------------------------------------------

    def blocks(self) -> list[Block]:
        p = self.preview
        blocks: list[Block] = []
        if p.problems or p.violations:
            block = Block("Validation and policy findings", ["| level | where | message |", "|---|---|---|"],
                          open=True)
            block.rows += [self.row("error" if x.is_error else "warning", f"{x.file}:{x.line}:{x.column}",
                                    x.message) for x in p.problems]
            block.rows += [self.row("mandatory" if v.rule.mandatory else "advisory", v.resource,
                               f"{v.message} [{v.rule.name}]") for v in p.violations]
            blocks.append(block)
        for app in p.apps:
            destructive = self._destructive(app)
            if destructive is not None:
                blocks.append(destructive)
        for app in p.apps:
            blocks += self._app_blocks(app)
        for title, content in p.attachments:
            lines = strip_controls(content).splitlines()
            blocks.append(Block(escape_markdown(title), ["<pre>"],
                                [pre_text(self.mask(line)) for line in lines], ["</pre>"]))
        return blocks

    def _destructive(self, app: AppPreview) -> Block | None:
        removes = [c for c in app.azure or () if c.action == "remove"]
        plan = app.scim.plan if app.scim else None
        steps = sorted((s for s in plan.steps if s.action in DESTRUCTIVE), key=step_key) if plan else []
        if not removes and not steps:
            return None
        count = len(removes) + len(steps)
        flag = " (over the deletion threshold)" if plan is not None and plan.guarded else ""
        name = escape_markdown(app.name)
        block = Block(f"<code>{name}</code>: {count} removal(s), disable(s) and delete(s){flag}",
                      ["| side | action | kind | object | reason |", "|---|---|---|---|---|"], open=True)
        block.rows += [self.row("Azure", "remove", c.short_type, c.name, "") for c in removes]
        block.rows += [self.row("SCIM", s.action.verb, s.kind, self.formatter.display(s), s.reason)
                       for s in steps]
        return block

    def _app_blocks(self, app: AppPreview) -> list[Block]:
        blocks = []
        name = escape_markdown(app.name)
        azure = [c for c in app.azure or () if c.action != "remove"]
        if azure:
            block = Block(f"<code>{name}</code>: Azure side, {len(azure)} resource(s) to add or change",
                          ["| action | resource | type | input | old | new |", "|---|---|---|---|---|---|"])
            for change in azure:
                block.rows += self._azure_rows(change)
            blocks.append(block)
        plan = app.scim.plan if app.scim else None
        if plan is not None and (plan.steps or plan.notes):
            steps = sorted((s for s in plan.steps if s.action not in DESTRUCTIVE), key=step_key)
            block = Block(f"<code>{name}</code>: SCIM side ({escape_markdown(plan.target)}), "
                          f"{len(steps)} change(s)" + (" besides the disables and deletes above"
                                                       if len(steps) < len(plan.steps) else ""),
                          ["| action | kind | object | attribute | old | new |", "|---|---|---|---|---|---|"])
            for step in steps:
                block.rows += self._step_rows(step)
            if plan.notes:
                block.footer = ["", *(f"- {escape_markdown(self.mask(note))}" for note in plan.notes)]
            blocks.append(block)
        if app.entra is not None and (app.entra.changes or app.entra.warnings):
            blocks.append(self._entra_block(app, app.entra))
        return blocks

    def _entra_block(self, app: AppPreview, entra: EntraSide) -> Block:
        """The job's schema diff: Entra's job provisions the app, the reconciler never plans its target."""
        name = escape_markdown(app.name)
        block = Block(f"<code>{name}</code>: Entra's synchronization schema (Entra's job provisions this app), "
                      f"{len(entra.changes)} change(s)", ["| object | change |", "|---|---|"])
        for line in entra.changes:
            kind, _, change = line.partition(": ")
            block.rows.append(self.row(kind, change) if change else self.row("", line))
        if entra.warnings:
            block.footer = ["", "Where Entra's job will do otherwise than the manifest says:", "",
                            *(f"- {escape_markdown(self.mask(w))}" for w in entra.warnings)]
        return block

    def _azure_rows(self, change: ResourceChange) -> list[str]:
        name = self.mask(change.name)
        if not change.inputs:
            return [self.row(change.action, name, change.short_type, "", "", "")]
        return [self.row(change.action, name, change.short_type, i.key, short(i.old), short(i.new))
                for i in change.inputs]

    def _step_rows(self, step: Step) -> list[str]:
        return [self.row(r.verb, r.kind, r.display, r.attribute, r.old, r.new)
                for r in step_rows(step, detailed=True, formatter=self.formatter)]

    # -- the whole, within the limit -----------------------------------------------------------------------------

    def render(self) -> str:
        return fit(self.summary(), self.blocks(), limit=self.limit, rest=EVERY_ROW)
