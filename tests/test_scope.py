"""Scoping filters: every operator of Entra's list, case-sensitivity, nulls, AND within and OR across filters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.model import ScopingClause
from reconciler.scope import clause_holds, passes


def clause(attribute: str, operator: str, value: object = None) -> ScopingClause:
    return ScopingClause(attribute=attribute, operator=operator, value=value)


@pytest.mark.parametrize(("operator", "operand", "value", "expected"), [
    ("EQUALS", "Sales", "Sales", True),
    ("EQUALS", "sales", "Sales", False),  # case-sensitive
    ("NOT EQUALS", "Contractors", "Sales", True),
    ("NOT EQUALS", "Contractors", "Contractors", False),
    ("NOT EQUALS", "contractors", "Contractors", True),
    ("IS TRUE", None, True, True),
    ("IS TRUE", None, False, False),
    ("IS TRUE", None, "True", True),
    ("IS FALSE", None, False, True),
    ("IS FALSE", None, True, False),
    ("IS NULL", None, None, True),
    ("IS NULL", None, "", True),
    ("IS NULL", None, "x", False),
    ("IS NOT NULL", None, "x", True),
    ("IS NOT NULL", None, None, False),
    ("REGEX MATCH", r".*\@domain.com", "jo@domain.com", True),  # Microsoft's common filter
    ("REGEX MATCH", r".*\@domain.com", "jo@other.com", False),
    ("REGEX MATCH", "([1-9][0-9])", "42", True),
    ("REGEX MATCH", "^abc$", "ABC", False),  # case-sensitive
    ("NOT REGEX MATCH", r".*\@domain.com", "jo@other.com", True),
    ("NOT REGEX MATCH", r".*\@domain.com", "jo@domain.com", False),
    ("Greater_Than", 1000000, "1500000", True),
    ("Greater_Than", 1000000, "1000000", False),
    ("Greater_Than", 5, "abc", False),  # the attribute must be an integer
    ("Greater_Than_OR_EQUALS", 1000000, "1000000", True),
    ("Greater_Than_OR_EQUALS", 1000000, 999999, False),
    ("Includes", "Eng", "Engineering", True),
    ("Includes", "eng", "Engineering", False),
    ("ENDS_WITH", "@contoso.com", "a@contoso.com", True),
    ("ENDS_WITH", "@contoso.com", "a@fabrikam.com", False),
])
def test_operators(operator: str, operand: object, value: object, expected: bool) -> None:
    assert clause_holds(clause("department", operator, operand), value) is expected


@pytest.mark.parametrize("operator", ["EQUALS", "NOT EQUALS", "REGEX MATCH", "NOT REGEX MATCH", "Includes",
                                      "ENDS_WITH", "Greater_Than", "Greater_Than_OR_EQUALS", "IS TRUE", "IS FALSE"])
@pytest.mark.parametrize("value", [None, ""])
def test_a_clause_on_a_null_or_empty_value_is_false(operator: str, value: object) -> None:
    operand = None if operator.startswith("IS") else (1 if operator.startswith("Greater") else "x")
    assert clause_holds(clause("department", operator, operand), value) is False


def test_multi_valued_attributes_never_match() -> None:
    assert clause_holds(clause("proxyAddresses", "Includes", "smtp"), ["smtp:a@b"]) is False


def test_and_within_a_filter_or_across_filters() -> None:
    user = {"department": "Sales", "country": "NL", "accountEnabled": True}
    sales_nl = [clause("department", "EQUALS", "Sales"), clause("country", "EQUALS", "NL")]
    sales_us = [clause("department", "EQUALS", "Sales"), clause("country", "EQUALS", "US")]
    engineering = [clause("department", "EQUALS", "Engineering")]
    assert passes([], user.get)
    assert passes([sales_nl], user.get)
    assert not passes([sales_us], user.get)
    assert passes([sales_us, sales_nl], user.get)
    assert not passes([sales_us, engineering], user.get)


_VALUES = st.one_of(st.none(), st.sampled_from(["Sales", "sales", "Engineering", "", "100", "7", "True", "False"]),
                    st.booleans(), st.integers(-3, 200))
_CLAUSES = st.one_of(
    st.builds(clause, st.sampled_from(["a", "b", "c"]),
              st.sampled_from(["EQUALS", "NOT EQUALS", "Includes", "ENDS_WITH", "REGEX MATCH", "NOT REGEX MATCH"]),
              st.sampled_from(["Sales", "s", "100", "^S", "True"])),
    st.builds(clause, st.sampled_from(["a", "b", "c"]), st.sampled_from(["IS TRUE", "IS FALSE", "IS NULL",
                                                                         "IS NOT NULL"])),
    st.builds(clause, st.sampled_from(["a", "b", "c"]), st.sampled_from(["Greater_Than", "Greater_Than_OR_EQUALS"]),
              st.integers(-2, 150)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_CLAUSES, min_size=1, max_size=3), min_size=1, max_size=3),
       st.integers(0, 2), _CLAUSES, st.dictionaries(st.sampled_from(["a", "b", "c"]), _VALUES))
def test_scope_is_monotone_under_added_and_clauses(filters, which, extra, user) -> None:
    """Adding a clause to a filter can only take users out of scope, never bring one in."""
    narrower = [list(f) for f in filters]
    narrower[which % len(narrower)].append(extra)
    if passes(narrower, user.get):
        assert passes(filters, user.get)
