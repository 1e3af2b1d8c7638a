"""Scoping filter operators: the manifest's names and Graph's ``filterClause.operatorName``, in one table.

Graph documents only ``EQUALS`` (``GET .../schema/filterOperators`` lists what a job supports); the other names are
the portal's, which the manifest already uses, so the table is the identity on names. It is still the one place
that says so: a spelling Graph turns out to want differently changes here and nowhere else.
"""

from __future__ import annotations

from reconciler.manifest.model import UNARY_OPERATORS

GRAPH_OPERATORS: dict[str, str] = {
    "EQUALS": "EQUALS",
    "NOT EQUALS": "NOT EQUALS",
    "IS TRUE": "IS TRUE",
    "IS FALSE": "IS FALSE",
    "IS NULL": "IS NULL",
    "IS NOT NULL": "IS NOT NULL",
    "REGEX MATCH": "REGEX MATCH",
    "NOT REGEX MATCH": "NOT REGEX MATCH",
    "Greater_Than": "Greater_Than",
    "Greater_Than_OR_EQUALS": "Greater_Than_OR_EQUALS",
    "Includes": "Includes",
    "ENDS_WITH": "ENDS_WITH",
}
MANIFEST_OPERATORS: dict[str, str] = {graph: manifest for manifest, graph in GRAPH_OPERATORS.items()}
# operators that take no value: their clause's targetOperand.values is []
UNARY_GRAPH_OPERATORS = frozenset(GRAPH_OPERATORS[name] for name in UNARY_OPERATORS)
