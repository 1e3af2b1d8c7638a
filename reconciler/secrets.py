"""The known secrets of this process, and the one scrubber that removes them from any text. Pure: no I/O.

Secrets are registered where they enter the process (a target token read from the variable a manifest's
``tokenEnv`` names, a Graph token, every environment variable whose name says it holds a secret); the output
boundary (:mod:`reconciler.outputs`) scrubs every line written to stderr, stdout, a log or a file with
:func:`scrub`, so no call site can forget it, whatever a server echoes back.

:func:`scrub` replaces each known secret, and any fragment of one that is :data:`MIN_FRAGMENT` characters or
longer (a token cut by a server's or our own truncation, or split by a line break, still leaks its part), with
:data:`MASK`. A fragment is found through the secret's 6-character substrings probed at every 6th position of the
text: any shared run of 12 characters contains such an aligned probe, so the scan costs about ``len(text) / 6``
set lookups rather than one per character.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

MASK = "[secret]"
MIN_FRAGMENT = 12
MIN_SECRET = 6          # shorter values are no secrets worth the name; scrubbing them would mangle ordinary text
MIN_NAMED_SECRET = 8    # for variables that only *look* secret by their name
_PROBE = MIN_FRAGMENT // 2
# The parts of a connection string (``Key=value;Key=value``) that are secret; its endpoints and account name are not,
# and masking them would mask every URL of the account.
SECRET_PART = re.compile(r"key|signature|password|pwd|secret|token|sas", re.I)
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_?KEY|CONNECTION_?STRING", re.I)


class SecretRegistry:
    """A set of secret values and the index that finds their fragments; thread-safe to register into."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._probes: dict[str, tuple[tuple[str, int], ...]] = {}
        self._longest_first: tuple[str, ...] = ()

    def register(self, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET or value in self._secrets:
            return
        with self._lock:
            self._secrets = self._secrets | {value}
            self._longest_first = tuple(sorted(self._secrets, key=len, reverse=True))
            if len(value) >= MIN_FRAGMENT:
                probes = dict(self._probes)
                for offset in range(len(value) - _PROBE + 1):
                    gram = value[offset:offset + _PROBE]
                    probes[gram] = (*probes.get(gram, ()), (value, offset))
                self._probes = probes

    def register_environment(self, names: Iterable[str], environ: Mapping[str, str]) -> None:
        """The values of the variables ``names``, and of every variable whose name looks like a secret's."""
        for name in names:
            self.register(environ.get(name))
        for name, value in environ.items():
            if SECRET_NAME.search(name) and len(value) >= MIN_NAMED_SECRET:
                for secret in secret_parts(value):
                    self.register(secret)

    def known(self) -> frozenset[str]:
        return self._secrets

    def clear(self) -> None:
        with self._lock:
            self._secrets, self._probes, self._longest_first = frozenset(), {}, ()

    def scrub(self, text: str) -> str:
        """``text`` with every known secret, and every fragment of one of MIN_FRAGMENT characters or more, masked."""
        if not self._secrets or not text:
            return text
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
        probes = self._probes
        if not probes or len(text) < MIN_FRAGMENT:
            return text
        spans: list[tuple[int, int]] = []
        covered = 0
        for position in range(0, len(text) - _PROBE + 1, _PROBE):
            if position + _PROBE <= covered:
                continue
            hits = probes.get(text[position:position + _PROBE])
            if hits:
                span = _longest_fragment(text, position, hits)
                if span is not None:
                    spans.append(span)
                    covered = max(covered, span[1])
        return _mask(text, spans) if spans else text


def _longest_fragment(text: str, position: int, hits: tuple[tuple[str, int], ...]) -> tuple[int, int] | None:
    """The widest span around ``position`` that equals part of a secret, if it is MIN_FRAGMENT long or more."""
    best: tuple[int, int] | None = None
    for secret, offset in hits:
        start, first = position, offset
        while start > 0 and first > 0 and text[start - 1] == secret[first - 1]:
            start, first = start - 1, first - 1
        end, last = position + _PROBE, offset + _PROBE
        while end < len(text) and last < len(secret) and text[end] == secret[last]:
            end, last = end + 1, last + 1
        if end - start >= MIN_FRAGMENT and (best is None or end - start > best[1] - best[0]):
            best = (start, end)
    return best


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, cursor = [], 0
    for start, end in merged:
        parts += [text[cursor:start], MASK]
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


REGISTRY = SecretRegistry()


def register_secret(value: str | None) -> None:
    """Make ``value`` a known secret of this process: from now on it is scrubbed from every output."""
    REGISTRY.register(value)


def known_secrets() -> frozenset[str]:
    return REGISTRY.known()


def scrub(text: str) -> str:
    return REGISTRY.scrub(text)


def secret_parts(value: str) -> list[str]:
    """What to mask of a secret variable's value: the whole value, or of a connection string (``a=b;c=d``, as
    Azure Storage writes them) only the values of its secret keys (``AccountKey``, ``SharedAccessSignature`` ...)."""
    fields = [part.partition("=") for part in value.split(";") if part.strip()]
    if len(fields) < 2 or not all(sep and key.strip().isidentifier() for key, sep, _ in fields):
        return [value]
    return [secret for key, _, secret in fields if SECRET_PART.search(key) and secret]
