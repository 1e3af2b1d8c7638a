"""Renderers of plans: plain text (a table per app), Markdown (for pull requests), JSON (the contract)."""

from reconciler.report.jsonout import render_json
from reconciler.report.markdown import render_markdown
from reconciler.report.text import render_text

__all__ = ["render_json", "render_markdown", "render_text"]
