"""SCIM attribute paths as written in mappings (RFC 7644 section 3.5.2 / 3.10), parsed into plain values.

Accepted forms, the ones Entra's mappings use:

- ``userName``, ``name.givenName``
- ``emails[type eq "work"].value`` (a value filter on one sub-attribute, ``eq`` to a JSON string)
- ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`` (an extension attribute)
- ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value``
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from reconciler.scim.errors import PathError

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

_NAME = r"[A-Za-z][A-Za-z0-9_$-]*"
_URN_PREFIX = re.compile(
    r"^(urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[A-Za-z0-9()+,\-.:=@;$_!*'%/?#]+?):(?=[A-Za-z][^:]*$)"
)
_PATH = re.compile(
    rf"^(?P<attr>{_NAME})"
    rf"(?:\[(?P<fattr>{_NAME})\s+eq\s+(?P<fvalue>\"(?:[^\"\\]|\\.)*\")\])?"
    rf"(?:\.(?P<sub>{_NAME}))?$"
)


@dataclass(frozen=True)
class TargetPath:
    """A parsed SCIM attribute path.

    ``schema`` is the extension URN, or None for the resource's core schema; ``filter`` is ``(sub-attribute,
    value)`` for ``attr[sub eq "value"]``; ``sub_attribute`` is what follows the final dot.
    """

    attribute: str
    sub_attribute: str | None = None
    filter: tuple[str, str] | None = None
    schema: str | None = None

    def __str__(self) -> str:
        text = f"{self.schema}:" if self.schema else ""
        text += self.attribute
        if self.filter:
            text += f"[{self.filter[0]} eq {json.dumps(self.filter[1])}]"
        if self.sub_attribute:
            text += f".{self.sub_attribute}"
        return text

    @property
    def top(self) -> str:
        """The top-level key of the resource this path writes (the URN for extension attributes)."""
        return self.schema or self.attribute


@functools.lru_cache(maxsize=4096)  # mappings name few paths, and every object is matched and diffed on them
def parse_path(text: str) -> TargetPath:
    """Parse a SCIM attribute path, or raise :class:`PathError` naming what is wrong and where."""
    if not text or text != text.strip():
        raise PathError("a SCIM path must be non-empty and have no surrounding spaces")
    schema = None
    rest = text
    offset = 0
    if text.lower().startswith("urn:"):
        match = _URN_PREFIX.match(text)
        if not match:
            raise PathError("an extension path is 'urn:...:Schema:attribute', e.g. "
                            f"'{ENTERPRISE_USER}:employeeNumber'")
        schema = match.group(1)
        rest = text[match.end():]
        offset = match.end()
    match = _PATH.match(rest)
    if not match:
        raise PathError(f"malformed SCIM path {text!r}; expected forms like 'name.givenName' or "
                        "'emails[type eq \"work\"].value'", column=offset + 1)
    flt = None
    if match.group("fattr"):
        flt = (match.group("fattr"), json.loads(match.group("fvalue")))
    return TargetPath(attribute=match.group("attr"), sub_attribute=match.group("sub"), filter=flt,
                      schema=schema)
