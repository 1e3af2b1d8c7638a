"""Malformed manifests: each is reported once, at the offending key or value, with a clear message."""

from __future__ import annotations

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import load_text
from tests.manifest_samples import BASE, delete, insert_after, replace

CASES = [
    # (id, text, line, column, message fragment)
    ("unknown-top-key", insert_after(4, "displayNme: Demo"), 5, 1, "unknown key 'displayNme' (did you mean 'displayName'?)"),
    ("unknown-nested-key", insert_after(14, "    timeout: 5"), 15, 5, "unknown key 'timeout' in provisioning.target"),
    ("literal-token", insert_after(14, "    token: s3cr3t-value"), 15, 5, "literal secrets are not allowed"),
    ("literal-password", insert_after(11, "  password: hunter2"), 12, 3, "literal secrets are not allowed"),
    ("wrong-api-version", replace(1, "apiVersion: reconciler/v2"), 1, 13, "apiVersion: expected 'reconciler/v1'"),
    ("wrong-kind", replace(2, "kind: App"), 2, 7, "kind: expected 'EnterpriseApp'"),
    ("missing-name", delete(3), 1, 1, "missing required key 'name'"),
    ("bad-slug", replace(3, "name: Demo App"), 3, 7, "name: must be a lowercase slug"),
    ("bad-email", replace(5, "notificationEmail: ops-at-contoso"), 5, 20, "notificationEmail: must be an email address"),
    ("owners-not-list", replace(6, "owners: ops@contoso.com"), 6, 9, "owners: expected a list"),
    ("role-with-space", replace(8, "  - {value: Power User, displayName: Power}"), 8, 13, "must be a role value without whitespace"),
    ("duplicate-role", insert_after(8, "  - {value: User, displayName: Users again}"), 9, 13, "duplicate role value 'User'"),
    ("undeclared-role", replace(10, "  - {group: Demo Users, role: Admin}"), 10, 31, "role 'Admin' is not declared"),
    ("default-access", replace(10, "  - {group: Demo Users, role: Default Access}"), 10, 31, "Default Access role are not provisioned"),
    ("user-and-group", replace(10, "  - {group: Demo Users, user: a@contoso.com, role: User}"), 10, 5, "exactly one of 'user' or 'group'"),
    ("no-principal", replace(10, "  - {role: User}"), 10, 5, "exactly one of 'user' or 'group'"),
    ("http-remote", replace(13, "    url: http://scim.example.com/v2"), 13, 10, "plain http:// is allowed only to loopback"),
    ("not-a-url", replace(13, "    url: scim.example.com"), 13, 10, "must be an absolute https:// URL"),
    ("url-credentials", replace(13, "    url: https://u:p@scim.example.com/v2"), 13, 10, "must not carry credentials"),
    ("missing-token-env", delete(14), 12, 3, "provisioning.target: missing required key 'tokenEnv'"),
    ("token-env-not-a-name", replace(14, "    tokenEnv: Bearer abc.def"), 14, 15, "must be an environment variable name"),
    ("negative-threshold", replace(15, "  deletionThreshold: -1"), 15, 22, "must be greater than or equal to 0"),
    ("threshold-string", replace(15, "  deletionThreshold: '10'"), 15, 22, "deletionThreshold: expected an integer"),
    ("missing-threshold", delete(15), 11, 1, "provisioning: missing required key 'deletionThreshold'"),
    ("bad-deprovision", insert_after(15, "  deprovision: remove"), 16, 16, "expected 'disable' or 'delete'"),
    ("bad-scope", insert_after(15, "  scope: everyone"), 16, 10, "expected 'assigned' or 'all'"),
    ("bad-engine", insert_after(11, "  engine: okta"), 12, 11, "expected 'reconciler' or 'entra'"),
    ("bad-operator", insert_after(15, "  scopingFilters:\n    - - {attribute: department, operator: EQUAL, value: x}"),
     17, 43, "operator: expected 'EQUALS'"),
    ("operator-needs-value", insert_after(15, "  scopingFilters:\n    - - {attribute: department, operator: EQUALS}"),
     17, 9, "operator 'EQUALS' needs a value"),
    ("unary-with-value", insert_after(15, "  scopingFilters:\n    - - {attribute: accountEnabled, operator: IS TRUE, value: x}"),
     17, 9, "operator 'IS TRUE' takes no value"),
    ("greater-than-text", insert_after(15, "  scopingFilters:\n    - - {attribute: level, operator: Greater_Than, value: high}"),
     17, 9, "compares integers"),
    ("bad-regex", insert_after(15, "  scopingFilters:\n    - - {attribute: mail, operator: REGEX MATCH, value: '(unclosed'}"),
     17, 9, "invalid regular expression"),
    ("filters-not-nested", insert_after(15, "  scopingFilters:\n    - {attribute: mail, operator: IS NULL}"),
     17, 7, "scopingFilters[0]: expected a list"),
    ("two-sources", replace(19, "      - {target: externalId, source: objectId, constant: x}"), 19, 9, "exactly one of 'source', 'constant' or 'expression'"),
    ("no-source", replace(19, "      - {target: externalId}"), 19, 9, "(found: none)"),
    ("empty-expression", replace(19, "      - {target: externalId, expression: ''}"), 19, 42, "must not be empty"),
    ("bad-path", replace(19, "      - {target: 'emails[type = \"work\"].value', source: mail}"), 19, 18, "malformed SCIM path"),
    ("bad-urn-path", replace(19, "      - {target: 'urn:ietf:params', source: employeeId}"), 19, 18, "an extension path is"),
    ("duplicate-target", replace(19, "      - {target: UserName, source: mail}"), 19, 18, "target 'UserName' is mapped twice"),
    ("no-matching", replace(18, "      - {target: userName, source: userPrincipalName}"), 17, 5, "at least one mapping needs 'matching: 1'"),
    ("duplicate-precedence", replace(19, "      - {target: externalId, source: objectId, matching: 1}"), 19, 58, "matching precedence 1 is used twice"),
    ("zero-precedence", replace(19, "      - {target: externalId, source: objectId, matching: 0}"), 19, 58, "must be greater than or equal to 1"),
    ("constant-matching", replace(19, "      - {target: externalId, constant: x, matching: 2}"), 19, 53, "a constant cannot be a matching attribute"),
    ("bad-apply", replace(19, "      - {target: externalId, source: objectId, apply: sometimes}"), 19, 55, "expected 'always' or 'onCreate'"),
    ("matching-on-create", replace(18, "      - {target: userName, source: userPrincipalName, matching: 1, apply: onCreate}"),
     18, 75, "a matching attribute must apply always"),
    ("empty-mappings", replace(18, "      []").replace("      - {target: externalId, source: objectId}\n", ""), 18, 7, "needs at least 1 item"),
    ("groups-without-mappings", insert_after(19, "  groups:\n    enabled: true"), 21, 14, "group provisioning is enabled but has no mappings"),
    ("duplicate-key", insert_after(5, "notificationEmail: other@contoso.com"), 6, 1, "duplicate key 'notificationEmail' (first at line 5)"),
    ("tab-indent", replace(16, "\tusers:"), 16, 1, "YAML syntax error"),
    ("unclosed-flow", replace(18, "      - {target: userName, source: userPrincipalName, matching: 1"), 19, 9, "YAML syntax error"),
    ("custom-tag", replace(4, "displayName: !secret Demo"), 4, 14, "unsupported YAML tag '!secret'"),
    ("list-document", "- a\n- b\n", 1, 1, "a manifest is a mapping of keys"),
    ("empty-document", "# nothing here\n", 1, 1, "empty file"),
    ("two-documents", BASE + "---\n" + BASE, 21, 1, "one manifest per file"),
    ("recursive-alias", insert_after(19, "  groups: &g {mappings: [*g]}"), 20, 11, "recursive alias"),
]


@pytest.mark.parametrize(("text", "line", "column", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_manifest_is_reported_at_the_offending_place(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_text(text, file="app.yaml")
    found = [(p.line, p.column, p.message) for p in caught.value.problems]
    assert any((pl, pc) == (line, column) and fragment in pm for pl, pc, pm in found), found
    for problem in caught.value.problems:
        assert "\n" not in problem.message
        assert str(problem).startswith(f"app.yaml:{problem.line}:{problem.column}: ")


def test_the_base_sample_is_valid() -> None:
    loaded = load_text(BASE, file="app.yaml")
    assert loaded.manifest.name == "demo"
    assert loaded.source.at(("provisioning", "target", "url")) == (13, 10)


def test_all_problems_of_a_file_are_reported_sorted() -> None:
    text = replace(3, "name: Bad Name").replace("tokenEnv: DEMO_TOKEN", "tokenEnv: 1x").replace(
        "role: User}", "role: Nope}")
    with pytest.raises(ManifestError) as caught:
        load_text(text, file="app.yaml")
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    assert {3, 10, 14} <= set(lines)


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ManifestError) as caught:
        load_text(insert_after(14, "    secretToken: super-secret-canary-123"), file="app.yaml")
    assert "super-secret-canary-123" not in str(caught.value)
    assert "literal secrets are not allowed" in str(caught.value)
