"""Random edits of a valid manifest never raise anything but the loader's own error, and it always says where."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest import load_text
from reconciler.manifest.load import load_bytes
from tests.manifest_samples import BASE, BASE_LINES

YAML_BITS = st.sampled_from([
    ":", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!tag ", "'", '"', "\\", "#", "|", ">", "\t", "\n", "  ",
    "<<: ", "---\n", "...", "null", "true", "~", "0x1F", "1e9", "-1", "@", "%", "`", "?", "é", "\u2028",
    "urn:", "[type eq \"work\"]", "matching: 1", "role: Default Access", "http://x", "tokenEnv: ",
])


@st.composite
def edited_manifests(draw: st.DrawFn) -> str:
    text = BASE
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["insert", "delete", "line", "swap"]))
        if kind == "insert":
            at = draw(st.integers(min_value=0, max_value=len(text)))
            bit = draw(st.one_of(YAML_BITS, st.text(max_size=6)))
            text = text[:at] + bit + text[at:]
        elif kind == "delete":
            at = draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))
            size = draw(st.integers(min_value=1, max_value=12))
            text = text[:at] + text[at + size:]
        elif kind == "line":
            lines = text.split("\n")
            index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines.insert(index, draw(st.sampled_from(BASE_LINES)))
            text = "\n".join(lines)
        else:
            lines = text.split("\n")
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_manifests())
def test_random_edits_give_a_manifest_or_positioned_problems(text: str) -> None:
    try:
        load_text(text, file="fuzz.yaml")
    except ManifestError as error:
        assert error.problems
        line_count = text.count("\n") + 2
        for problem in error.problems:
            assert 1 <= problem.line <= line_count and problem.column >= 1
            assert problem.message and "\n" not in problem.message


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), edited_manifests().map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_arbitrary_bytes_give_a_manifest_or_problems(raw: bytes) -> None:
    try:
        load_bytes(raw, file="bytes.yaml")
    except ManifestError as error:
        assert error.problems
