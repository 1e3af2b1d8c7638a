"""YAML hazards: duplicate keys, alias bombs, encodings, binary and oversized input, several files."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifest, load_manifests
from reconciler.manifest.yamldoc import MAX_BYTES, MAX_NODES, read_yaml
from tests.manifest_samples import BASE, replace


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_rejected_with_a_position() -> None:
    document = read_yaml("bomb.yaml", billion_laughs().encode())
    assert document.data is None
    [problem] = document.problems
    assert f"more than {MAX_NODES} values" in problem.message
    assert problem.line > 1  # at the node where the budget ran out, not at the document start


def test_moderate_aliases_are_fine() -> None:
    text = BASE.replace("  - {value: User, displayName: User}", "  - &role {value: User, displayName: User}")
    text = text.replace("owners: [ops@contoso.com]", "owners: [&o ops@contoso.com, *o]")
    document = read_yaml("ok.yaml", text.encode())
    assert document.problems == []
    assert document.data["owners"] == ["ops@contoso.com", "ops@contoso.com"]


def test_merge_keys_merge_without_overriding() -> None:
    text = "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n"
    document = read_yaml("m.yaml", text.encode())
    assert document.data["child"] == {"y": 3, "x": 1}


def test_non_utf8_names_the_byte_and_position(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("Demo", "D\xe9mo", 1).encode("latin-1"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (4, 15)
    assert "not UTF-8" in problem.message and "0xe9" in problem.message


def test_utf8_bom_and_non_ascii_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.replace("displayName: Demo", "displayName: Démo Ünïcode").encode())
    assert load_manifest(path).manifest.display_name == "Démo Ünïcode"


def test_binary_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "image.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ManifestError, match="binary file"):
        load_manifest(path)


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * (MAX_BYTES + 10))
    with pytest.raises(ManifestError, match="larger than"):
        load_manifest(path)


def test_multi_megabyte_manifest_is_answered(tmp_path: Path) -> None:
    extra = "".join(f"  - {{value: Role{i}, displayName: Role {i}}}\n" for i in range(60_000))
    path = tmp_path / "big.yaml"
    path.write_text(BASE.replace("roles:\n", "roles:\n" + extra) + "bogus: 1\n")
    assert path.stat().st_size > 2_000_000
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert [p.message for p in caught.value.problems] == ["unknown key 'bogus'; allowed: " + ", ".join(sorted(
        ["apiVersion", "kind", "name", "displayName", "description", "galleryTemplateId", "notificationEmail",
         "owners", "roles", "assignments", "provisioning"]))]


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file or folder"):
        load_manifests([tmp_path / "nope"])
    with pytest.raises(ManifestError, match="no manifests"):
        load_manifests([tmp_path])


def test_app_names_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(BASE)
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path])
    [problem] = caught.value.problems
    assert problem.file.endswith("b.yaml") and (problem.line, problem.column) == (3, 7)
    assert "already used by" in problem.message and "a.yaml:3" in problem.message


def test_every_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(replace(3, "name: A B"))
    (tmp_path / "b.yml").write_text(replace(3, "name: C D"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path])
    assert sorted(Path(p.file).name for p in caught.value.problems) == ["a.yaml", "b.yml"]


def test_examples_are_valid() -> None:
    loaded = load_manifests(["manifests"])
    assert sorted(item.manifest.name for item in loaded) == ["atea", "wiki"]
