"""The guard of a paged SCIM read (RFC 7644 section 3.4.2.4): from each page's ids and ``totalResults``, whether
to go on, stop, or fail. Pure; :meth:`~reconciler.scim.client.ScimClient.pages` does the requests.

Servers ignore ``count``, cap pages, misreport ``itemsPerPage`` or ``totalResults``, serve page 1 again past the
end, or never stop. So a read:

- stops when ``startIndex`` passes ``totalResults``, on an empty page, or on a page of ids already seen;
- fails on a repeated page while ``totalResults`` says more remain (a partial read is never returned), on a
  listed resource without an id, on a first page with ``totalResults`` above zero and no resources, and past a
  bound: more fresh ids than the first page's ``totalResults`` plus slack (objects created during the read), or
  more than ``max_objects`` in all (``totalResults`` announcing more fails at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PageVerdict:
    """What to do with one page: yield the resources at ``fresh`` (positions in the page), then stop if ``done``.

    ``error`` (the read fails, nothing of this page is yielded) says why, without naming the request.
    """

    fresh: tuple[int, ...] = ()
    done: bool = False
    error: str | None = None


@dataclass
class PageGuard:
    """Follows one paged read; ask :attr:`start` for the next ``startIndex``, then pass the page to :meth:`page`.

    ``setting`` names the knob of ``max_objects`` in the errors (an environment variable).
    """

    page_size: int
    max_objects: int
    setting: str
    start: int = 1
    seen: set[str] = field(default_factory=set)
    ceiling: int | None = None  # the most fresh ids the first page's totalResults allows

    def page(self, ids: Sequence[object], total: int | None) -> PageVerdict:
        """The verdict on a page listing resources with ``ids`` (as the server sent them) and ``totalResults``."""
        if self.start == 1 and not self.seen:
            problem = self._first_page(total, len(ids))
            if problem is not None:
                return PageVerdict(error=problem)
        fresh = []
        for position, rid in enumerate(ids):
            if not isinstance(rid, str):
                return PageVerdict(error="a listed resource has no id")
            if rid not in self.seen:
                self.seen.add(rid)
                fresh.append(position)
        problem = self._count_problem()
        if problem is not None:
            return PageVerdict(error=problem)
        if not fresh:
            if ids and total is not None and len(self.seen) < total:
                return PageVerdict(error=f"paging repeats resources after {len(self.seen)} of {total}: the server "
                                         "seems to ignore startIndex")
            return PageVerdict(done=True)
        self.start += len(ids)
        return PageVerdict(tuple(fresh), done=total is not None and self.start > total)

    def _first_page(self, total: int | None, listed: int) -> str | None:
        """Refuse a first page that contradicts itself or announces too much; else set the ceiling of fresh ids."""
        if total is None:
            return None
        if total > 0 and not listed:
            return f"the first page reports totalResults {total} but lists no Resources"
        if total > self.max_objects:
            return (f"the target reports {total} resources, above the limit of {self.max_objects} objects per read "
                    f"({self.setting})")
        self.ceiling = total + max(self.page_size, total // 10)
        return None

    def _count_problem(self) -> str | None:
        count = len(self.seen)
        if self.ceiling is not None and count > self.ceiling:
            return (f"paging does not end: {count} distinct resources listed, more than the first page's "
                    f"totalResults allows ({self.ceiling}, with slack)")
        if count > self.max_objects:
            return (f"paging does not end: more than {self.max_objects} resources listed, the limit of objects per "
                    f"read ({self.setting})")
        return None
