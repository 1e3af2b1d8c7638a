"""Reading the live state: what the target holds, read once per run in pages (users, then groups with their
members), into a :class:`~reconciler.scim.livestate.LiveState`.

``attributes=`` limits the read to what the planner compares, where the server allows it (the client drops it
once if the server refuses it); ``id`` always comes back.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.scim.client import ScimClient
from reconciler.scim.livestate import LiveState, Resource, read_attributes


async def read_live(client: ScimClient, *, user_attributes: Sequence[str] | None = None,
                    group_attributes: Sequence[str] | None = None, groups: bool = True,
                    page_size: int | None = None) -> LiveState:
    """One paged read of all Users and (if ``groups``) all Groups, members included.

    ``*_attributes`` are target paths (as in mappings) or attribute names; None reads everything.
    """
    state = LiveState()
    user_attrs = read_attributes(user_attributes) if user_attributes is not None else None
    async for page in client.pages("User", attributes=user_attrs, page_size=page_size):
        state.users.update((r["id"], r) for r in page)
    if groups:
        group_attrs = None
        if group_attributes is not None:
            group_attrs = read_attributes(group_attributes, always=("externalId", "displayName", "members"))
        async for page in client.pages("Group", attributes=group_attrs, page_size=page_size):
            state.groups.update((r["id"], r) for r in page)
    return state


async def find_users(client: ScimClient, path: str, value: str, *,
                     attributes: Sequence[str] | None = None) -> list[Resource]:
    """Users whose ``path`` equals ``value``: the lookup after a create whose answer was lost."""
    attrs = read_attributes(attributes) if attributes is not None else None
    return await client.find("User", path, value, attributes=attrs)


async def find_groups(client: ScimClient, path: str, value: str, *,
                      attributes: Sequence[str] | None = None) -> list[Resource]:
    """Groups whose ``path`` equals ``value`` (members excluded: a lookup needs only the id)."""
    attrs = read_attributes(attributes, always=("externalId", "displayName")) if attributes is not None else None
    if attrs is None:
        return await client.find("Group", path, value, excluded_attributes=["members"])
    return await client.find("Group", path, value, attributes=attrs)
