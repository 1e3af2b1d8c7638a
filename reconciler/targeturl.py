"""One spelling per SCIM target (pure): the key that locks, and later the provisioning state, are filed under.

Two runs must agree that ``https://SCIM.example:443/v2/`` and ``https://scim.example/v2`` are the same target, or
each takes its own lock and both write. :func:`normalize_target_url` lower-cases the scheme and host, treats
``localhost``, ``127.0.0.1`` and ``[::1]`` as one host, drops the scheme's default port (``:443``, ``:80``), any
credentials, the fragment and a trailing dot on the host, collapses ``//`` in the path and drops a trailing
slash. The path keeps its case (SCIM servers may route ``/Users`` and ``/users`` differently) and the query is
kept (some targets need one). Merging too much only serialises more runs; merging too little would let two writers
in, so doubtful cases merge.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LOOPBACK = "localhost"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


def normalize_target_url(url: str) -> str:
    """The canonical spelling of a target URL; text that is not an absolute URL is only stripped."""
    text = url.strip()
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return text
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    host = LOOPBACK if host in _LOOPBACK_HOSTS else host
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    try:
        port = parts.port
    except ValueError:  # not a number: keep what was written, so that it still names one target
        port_text = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        host = f"{host}:{port_text.lower()}"
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{path}{query}"


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name or password (``https://user:pass@host``)."""
    parts = urlsplit(url.strip())
    return bool(parts.username or parts.password)
