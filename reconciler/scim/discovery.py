"""What a SCIM target says it can do (RFC 7643 section 5-7), read tolerantly into plain values.

Servers that lack a discovery endpoint, or answer it with something odd, get safe defaults: PATCH assumed
(Entra requires it), no Bulk, no ETags, filtering assumed (a server that says ``filter.supported: false`` gets
its lookups as paged reads, compared locally), no page-size cap known.

Endpoints in /ResourceTypes are relative to the base URL (RFC 7643 section 6: ``/Users``), but servers also give
the full path (``/scim/v2/Users`` under a base URL ending in ``/scim/v2``) or an absolute URL: both are made
relative to the base URL. An absolute URL on another scheme, host or port is ignored (the default endpoint is
used): the token is only ever sent to the base URL's origin.
The ServiceProviderConfig is parsed with ``scim2-models`` (one small document per run, where validation pays);
on a document the model rejects, the same fields are read from the plain dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import ValidationError
from scim2_models import ServiceProviderConfig

DEFAULT_ENDPOINTS = {"User": "/Users", "Group": "/Groups"}


@dataclass(frozen=True)
class Capabilities:
    """The target's features, as used by the client and the planner."""

    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int | None = None
    bulk_max_payload_size: int | None = None
    filter: bool = True
    max_results: int | None = None
    etag: bool = False
    sort: bool = False
    endpoints: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENDPOINTS))
    schemas: tuple[dict[str, Any], ...] = ()
    discovered: bool = False

    def endpoint(self, resource_type: str) -> str:
        """The path of a resource type's endpoint (``User`` -> ``/Users``)."""
        return self.endpoints.get(resource_type, DEFAULT_ENDPOINTS.get(resource_type, f"/{resource_type}s"))


def _positive(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _flag(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def parse_service_provider_config(document: Any) -> dict[str, Any]:
    """The Capabilities fields a ServiceProviderConfig document gives; keys absent when it says nothing."""
    if not isinstance(document, dict):
        return {}
    try:
        config = ServiceProviderConfig.model_validate(document)
    except ValidationError:
        return _parse_config_dict(document)
    fields: dict[str, Any] = {}
    if config.patch is not None and config.patch.supported is not None:
        fields["patch"] = bool(config.patch.supported)
    if config.bulk is not None:
        fields["bulk"] = bool(config.bulk.supported)
        fields["bulk_max_operations"] = _positive(config.bulk.max_operations)
        fields["bulk_max_payload_size"] = _positive(config.bulk.max_payload_size)
    if config.filter is not None:
        if config.filter.supported is not None:
            fields["filter"] = bool(config.filter.supported)
        fields["max_results"] = _positive(config.filter.max_results)
    if config.etag is not None and config.etag.supported is not None:
        fields["etag"] = bool(config.etag.supported)
    if config.sort is not None and config.sort.supported is not None:
        fields["sort"] = bool(config.sort.supported)
    return fields


def _parse_config_dict(document: dict[str, Any]) -> dict[str, Any]:
    def section(name: str) -> dict[str, Any]:
        value = document.get(name)
        return value if isinstance(value, dict) else {}

    fields: dict[str, Any] = {}
    if "supported" in section("patch"):
        fields["patch"] = _flag(section("patch")["supported"], True)
    if section("bulk"):
        fields["bulk"] = _flag(section("bulk").get("supported"), False)
        fields["bulk_max_operations"] = _positive(section("bulk").get("maxOperations"))
        fields["bulk_max_payload_size"] = _positive(section("bulk").get("maxPayloadSize"))
    if section("filter"):
        fields["filter"] = _flag(section("filter").get("supported"), True)
        fields["max_results"] = _positive(section("filter").get("maxResults"))
    if section("etag"):
        fields["etag"] = _flag(section("etag").get("supported"), False)
    if section("sort"):
        fields["sort"] = _flag(section("sort").get("supported"), False)
    return fields


def list_resources(document: Any) -> list[dict[str, Any]]:
    """The resources of a discovery answer: a ListResponse, or (as some servers do) a bare JSON list."""
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict) and isinstance(document.get("Resources"), list):
        items = document["Resources"]
    else:
        return []
    return [item for item in items if isinstance(item, dict)]


def parse_resource_types(document: Any, base_url: str = "") -> dict[str, str]:
    """``{resource type name: endpoint path}`` from a /ResourceTypes answer, each endpoint relative to
    ``base_url`` (see :func:`relative_endpoint`); defaults for what it omits or names elsewhere."""
    endpoints = dict(DEFAULT_ENDPOINTS)
    for item in list_resources(document):
        name, endpoint = item.get("name") or item.get("id"), item.get("endpoint")
        if isinstance(name, str) and isinstance(endpoint, str) and endpoint:
            path = relative_endpoint(endpoint, base_url)
            if path is not None:
                endpoints[name] = path
    return endpoints


def relative_endpoint(endpoint: str, base_url: str) -> str | None:
    """A /ResourceTypes ``endpoint`` as a path under ``base_url`` (``/Users``), or None when it cannot be used.

    ``Users`` and ``/Users`` are taken as they are; a path that repeats the base URL's path (``/scim/v2/Users``
    under ``https://host/scim/v2``) and an absolute URL on the base URL's scheme, host and port lose that prefix.
    An absolute URL elsewhere, or outside the base URL's path, is None.
    """
    base = urlsplit(base_url)
    base_path = base.path.rstrip("/")
    parts = urlsplit(endpoint.strip())
    path = "/" + parts.path.lstrip("/")
    if parts.scheme or parts.netloc:
        if _origin(parts) is None or _origin(parts) != _origin(base):
            return None
        if base_path and not path.startswith(f"{base_path}/"):
            return None
    if base_path and path.startswith(f"{base_path}/"):
        path = path[len(base_path):]
    path = "/" + path.strip("/")
    return path if path != "/" else None


def _origin(parts: SplitResult) -> tuple[str, str, int] | None:
    """Scheme, host and port (the scheme's default when omitted); None for a URL without a host or a bad port."""
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in ("http", "https"):
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def parse_schemas(document: Any) -> tuple[dict[str, Any], ...]:
    """The schema definitions of a /Schemas answer (each with ``id`` and ``attributes``)."""
    return tuple(item for item in list_resources(document)
                 if isinstance(item.get("id"), str) and isinstance(item.get("attributes"), list))
