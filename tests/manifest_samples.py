"""A small valid manifest, line by line, and helpers to break it in one place (for the loader's tests)."""

from __future__ import annotations

BASE_LINES = [
    "apiVersion: reconciler/v1",                                         # 1
    "kind: EnterpriseApp",                                               # 2
    "name: demo",                                                        # 3
    "displayName: Demo",                                                 # 4
    "notificationEmail: ops@contoso.com",                                # 5
    "owners: [ops@contoso.com]",                                         # 6
    "roles:",                                                            # 7
    "  - {value: User, displayName: User}",                              # 8
    "assignments:",                                                      # 9
    "  - {group: Demo Users, role: User}",                               # 10
    "provisioning:",                                                     # 11
    "  target:",                                                         # 12
    "    url: https://scim.example.com/v2",                              # 13
    "    tokenEnv: DEMO_TOKEN",                                          # 14
    "  deletionThreshold: 10",                                           # 15
    "  users:",                                                          # 16
    "    mappings:",                                                     # 17
    "      - {target: userName, source: userPrincipalName, matching: 1}",  # 18
    "      - {target: externalId, source: objectId}",                    # 19
]

BASE = "\n".join(BASE_LINES) + "\n"


def replace(line: int, text: str) -> str:
    """The base manifest with 1-based ``line`` replaced by ``text`` (which may hold several lines)."""
    lines = list(BASE_LINES)
    lines[line - 1] = text
    return "\n".join(lines) + "\n"


def insert_after(line: int, text: str) -> str:
    """The base manifest with ``text`` inserted after 1-based ``line``."""
    lines = list(BASE_LINES)
    lines.insert(line, text)
    return "\n".join(lines) + "\n"


def delete(line: int) -> str:
    lines = list(BASE_LINES)
    del lines[line - 1]
    return "\n".join(lines) + "\n"
