"""The paging guard on its own: from each page's ids and totalResults, go on, stop, or fail (no server needed)."""

from __future__ import annotations

from reconciler.scim.paging import PageGuard, PageVerdict


def guard(page_size: int = 2, max_objects: int = 1000) -> PageGuard:
    return PageGuard(page_size, max_objects, "RECONCILER_MAX_OBJECTS")


def test_pages_go_on_until_start_index_passes_total_results() -> None:
    paging = guard()
    assert paging.page(["a", "b"], 5) == PageVerdict((0, 1))
    assert paging.start == 3
    assert paging.page(["c", "d"], 5) == PageVerdict((0, 1))
    assert paging.page(["e"], 5) == PageVerdict((0,), done=True)
    assert paging.start == 6


def test_without_total_results_an_empty_page_ends_the_read() -> None:
    paging = guard()
    assert paging.page(["a", "b"], None) == PageVerdict((0, 1))
    assert paging.page([], None) == PageVerdict(done=True)


def test_a_server_that_ignores_count_is_followed_by_what_it_listed() -> None:
    paging = guard(page_size=2)
    assert paging.page(["a", "b", "c"], 4) == PageVerdict((0, 1, 2))
    assert paging.start == 4
    assert paging.page(["d"], 4) == PageVerdict((0,), done=True)


def test_page_one_served_again_past_the_end_stops_when_everything_was_seen() -> None:
    paging = guard()
    paging.page(["a", "b"], None)
    assert paging.page(["a", "b"], None) == PageVerdict(done=True)


def test_only_fresh_resources_are_yielded() -> None:
    paging = guard()
    paging.page(["a", "b"], 6)
    assert paging.page(["b", "c"], 6) == PageVerdict((1,))
    assert paging.start == 5  # the next page starts after everything listed, repeats included


def test_a_repeated_page_while_more_remain_is_an_error_not_a_partial_read() -> None:
    paging = guard()
    paging.page(["a", "b"], 4)
    verdict = paging.page(["a", "b"], 4)
    assert verdict.error == "paging repeats resources after 2 of 4: the server seems to ignore startIndex"
    assert not verdict.fresh


def test_a_resource_without_an_id_fails_the_read() -> None:
    assert guard().page(["a", None], 2).error == "a listed resource has no id"
    assert guard().page([7], 1).error == "a listed resource has no id"


def test_a_first_page_that_contradicts_itself_fails() -> None:
    assert guard().page([], 3).error == "the first page reports totalResults 3 but lists no Resources"
    assert guard().page([], 0) == PageVerdict(done=True)


def test_total_results_above_the_limit_fails_at_once() -> None:
    verdict = guard(max_objects=10).page(["a"], 11)
    assert verdict.error == ("the target reports 11 resources, above the limit of 10 objects per read "
                             "(RECONCILER_MAX_OBJECTS)")


def test_more_fresh_ids_than_the_first_total_results_allows_fails() -> None:
    paging = guard(page_size=2)  # the first page's totalResults 3 allows 3 + max(2, 3 // 10) = 5 fresh ids
    assert paging.page(["a", "b"], 3) == PageVerdict((0, 1))
    assert paging.page(["c", "d"], None) == PageVerdict((0, 1))  # later pages stop saying how many
    verdict = paging.page(["e", "f"], None)
    assert verdict.error == ("paging does not end: 6 distinct resources listed, more than the first page's "
                             "totalResults allows (5, with slack)")


def test_more_resources_than_the_limit_fails_without_total_results() -> None:
    paging = guard(page_size=2, max_objects=3)
    paging.page(["a", "b"], None)
    assert paging.page(["c", "d"], None).error == ("paging does not end: more than 3 resources listed, the limit "
                                                   "of objects per read (RECONCILER_MAX_OBJECTS)")
