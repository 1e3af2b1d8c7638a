"""What must not reach a pull request: secrets always, personal data when ``--mask-pii`` asks.

Secrets are kept out by construction (tokens never enter a plan, SecretToken inputs are masked in the declared
listing), and the finished comment passes the one scrubber of :mod:`reconciler.secrets` like every other output.

:class:`PiiMasker` replaces user names and email addresses with short hashes that are stable across runs (the same
person gets the same hash in every comment, so a reviewer can still follow one user through a change). With
``RECONCILER_MASK_SALT`` set the hash is keyed, so nobody can confirm a guessed address by hashing it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from typing import Any

from reconciler.azure.ids import slug

SALT_ENV = "RECONCILER_MASK_SALT"
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class PiiMasker:
    """Replaces known personal values (and any email address) with ``pii:xxxxxxxx``."""

    def __init__(self, *, salt: str | None = None) -> None:
        self.salt = os.environ.get(SALT_ENV, "") if salt is None else salt
        self._known: dict[str, str] = {}  # lowercased value -> replacement
        self._pattern: re.Pattern[str] | None = None
        self._cache: dict[str, str] = {}

    def token(self, value: str) -> str:
        key = value.strip().lower().encode()
        if self.salt:
            digest = hmac.new(self.salt.encode(), key, hashlib.sha256).hexdigest()
        else:
            digest = hashlib.sha256(key).hexdigest()
        return f"pii:{digest[:8]}"

    def add(self, value: object, *, slugs: bool = False) -> None:
        """Remember a personal value; with ``slugs``, also its slug (resource names are built from it)."""
        if not isinstance(value, str) or len(value.strip()) < 3:
            return
        token = self.token(value)
        self._known[value.strip().lower()] = token
        if slugs:
            self._known[slug(value)] = token
        self._pattern = None
        self._cache.clear()

    def mask(self, text: str) -> str:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        masked = text
        if self._known:
            if self._pattern is None:
                self._pattern = re.compile("(?<![A-Za-z0-9])" + _trie(self._known) + "(?![A-Za-z0-9])",
                                           re.IGNORECASE)
            masked = self._pattern.sub(lambda m: self._known[m.group(0).lower()], masked)
        masked = EMAIL.sub(lambda m: self.token(m.group(0)), masked)
        self._cache[text] = masked
        return masked


def _trie(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words`` (longest first), as a trie: fast with thousands of words,
    where a plain alternation tries every word at every position."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return "(?:" + emit(root) + ")"
