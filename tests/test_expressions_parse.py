"""The expression parser: Entra's syntax, positions inside the text, and only its own error on any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.expressions import EvaluationError, ExpressionSyntaxError, compile_expression, parse
from reconciler.expressions.parse import Attribute, Call, Compare, Literal
from tests.engine_helpers import run


def test_nested_calls_attributes_and_strings() -> None:
    tree = parse('Join(" ", [givenName], ToUpper([surname]))')
    assert tree == Call(0, "Join", (Literal(5, " "), Attribute(10, "givenName"),
                                    Call(23, "ToUpper", (Attribute(31, "surname"),))))


def test_backslash_escapes_quotes_and_backslashes() -> None:
    # Microsoft's example: "Company name: \"Contoso\""
    assert parse(r'"Company name: \"Contoso\""') == Literal(0, 'Company name: "Contoso"')
    assert parse(r'"a\\b"') == Literal(0, "a\\b")


def test_omitted_arguments_are_none() -> None:
    tree = parse('Switch([IsSoftDeleted], , "False", "True")')
    assert isinstance(tree, Call) and tree.args[1] is None and len(tree.args) == 4
    assert parse("Replace([a], , , , , , )").args[1:] == (None,) * 6  # type: ignore[union-attr]


def test_comparisons_numbers_hex_and_named_constants() -> None:
    tree = parse('IIF([country]="USA", 1, -2)')
    assert isinstance(tree, Call) and tree.args[0] == Compare(13, "=", Attribute(4, "country"), Literal(14, "USA"))
    assert tree.args[2] == Literal(24, -2)
    assert parse("&HF7") == Literal(0, 247)
    assert parse("InStr([a], \"b\", 1, vbTextCompare)").args[3] == Literal(19, "vbTextCompare")  # type: ignore


def test_whitespace_and_newlines_between_tokens() -> None:
    assert run('SelectUniqueValue( \n  Join("@", [a], "x.com"),\n  "fallback"\n)', a="j") == "j@x.com"


@pytest.mark.parametrize(("text", "offset", "message"), [
    ('Join(" ", [givenName]', 4, "unclosed '(' of Join"),
    ('Join(" ", "abc', 10, "unclosed string"),
    ("Join(\" \", [givenName)", 10, "unclosed '['"),
    ('Join(" " [a])', 9, "expected ',' or ')'"),
    ("givenName", 0, "write attributes as [givenName]"),
    ("[a] extra", 4, "after the end"),
    ("", 0, "empty expression"),
    ('IIF([a] = "b" = "c", 1, 2)', 14, "cannot be chained"),
    ("Left(, 2", 4, "unclosed '(' of Left"),
    ("@", 0, "unexpected '@'"),
    ("&Hxyz", 0, "hexadecimal"),
    ("[]", 0, "empty attribute"),
])
def test_syntax_errors_point_inside_the_expression(text: str, offset: int, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse(text)
    assert caught.value.offset == offset
    assert message in caught.value.message
    assert str(caught.value).startswith(f"column {offset + 1}: ")


def test_entra_length_limit() -> None:
    with pytest.raises(ExpressionSyntaxError, match="10000"):
        parse('"' + "a" * 10_000 + '"')


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ExpressionSyntaxError, match="nested"):
        parse("Not(" * 500 + '"x"' + ")" * 500)


_ALPHABET = st.sampled_from(list('()[]",\\ =<>&H-0123456789abcJoinLeftSwitchIIF\n\t.@'))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(_ALPHABET, max_size=60)))
def test_parser_raises_only_its_own_error(text: str) -> None:
    try:
        parse(text)
    except ExpressionSyntaxError as error:
        assert 0 <= error.offset <= len(text)


_NAMES = st.sampled_from(["givenName", "surname", "mail", "department", "IsSoftDeleted"])
_STRINGS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


def _expressions() -> st.SearchStrategy[str]:
    leaf = st.one_of(_NAMES.map(lambda n: f"[{n}]"),
                     _STRINGS.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
                     st.integers(-5, 20).map(str))

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, children).map(lambda a: f"Join({a[0]}, {a[1]})"),
            children.map(lambda a: f"ToUpper({a})"),
            children.map(lambda a: f"NormalizeDiacritics({a})"),
            st.tuples(children, children).map(lambda a: f"Coalesce({a[0]}, {a[1]})"),
            st.tuples(children, children, children).map(lambda a: f"Switch({a[0]}, {a[1]}, \"x\", {a[2]})"),
            children.map(lambda a: f"StripSpaces({a})"),
            st.tuples(children, children).map(lambda a: f"Append({a[0]}, {a[1]})"),
            children.map(lambda a: f"Left({a}, 2)"),
            children.map(lambda a: f"Mid({a}, 2, 3)"),
            children.map(lambda a: f"PCase({a})"),
            children.map(lambda a: f"Word({a}, 2, \" ,\")"),
            children.map(lambda a: f"Item(Split({a}, \",\"), 2)"),
            children.map(lambda a: f"Replace({a}, \"a\", , , \"b\", , )"),
            children.map(lambda a: f"Replace({a}, , \"[aeiou]+\", , \"_\", , )"),
            children.map(lambda a: f"ConvertToUTF8Hex({a})"),
            st.tuples(children, children, children).map(lambda a: f"IIF({a[0]} = \"x\", {a[1]}, {a[2]})"),
            st.tuples(children, children).map(lambda a: f"InStr({a[0]}, {a[1]}, 1, vbTextCompare)"),
            children.map(lambda a: f"CStr(IsPresent({a}))"),
        )
    return st.recursive(leaf, extend, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(_expressions(), st.dictionaries(_NAMES, st.one_of(st.none(), _STRINGS, st.booleans()), max_size=5))
def test_deterministic_functions_give_the_same_value_twice(text: str, attributes: dict) -> None:
    """Same expression, same object: the same value, or the same evaluation error (never another exception)."""
    expression = compile_expression(text)
    assert expression.deterministic

    def outcome() -> object:
        try:
            return run(text, **attributes)
        except EvaluationError as error:
            return ("error", str(error))
    assert outcome() == outcome()


@settings(max_examples=100, deadline=None)
@given(_STRINGS)
def test_string_literals_round_trip(value: str) -> None:
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert parse(quoted) == Literal(0, value)
