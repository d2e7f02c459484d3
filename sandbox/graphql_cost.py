"""What GitHub's GraphQL API checks before it runs a query, and what the query costs.

Every connection needs `first` or `last`, each within 1-100; a query may ask for at most 500,000
nodes. The cost in points follows GitHub's documented formula: count the requests needed to
fill each connection, assuming every one returns its full page (a connection nested in a page of
100 takes 100 requests), add them up, divide by 100 and round, and charge at least 1 point. The
node count is the same walk multiplied by each connection's own page size.

https://docs.github.com/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    get_named_type,
)

MAX_PAGE = 100
MAX_NODES = 500_000


@dataclass
class Analysis:
    errors: list[dict] = field(default_factory=list)
    requests: int = 0
    nodes: int = 0

    @property
    def cost(self) -> int:
        return max(1, int(self.requests / 100 + 0.5))


def operation_of(document: Any, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def analyse(schema: GraphQLSchema, document: Any, operation: OperationDefinitionNode,
            variables: dict[str, Any]) -> Analysis:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {v.variable.name.value: getattr(v.default_value, "value", None)
                for v in operation.variable_definitions or () if v.default_value is not None}
    out = Analysis()

    def argument(node: FieldNode, name: str) -> int | None:
        for arg in node.arguments or ():
            if arg.name.value == name:
                value = arg.value
                raw = (variables.get(value.name.value, defaults.get(value.name.value))
                       if value.kind == "variable" else getattr(value, "value", None))
                try:
                    return None if raw is None else int(raw)
                except (TypeError, ValueError):
                    return None
        return None

    def walk(selections: Any, parent: Any, multiplier: int, path: list[str]) -> None:
        for sel in selections:
            if isinstance(sel, InlineFragmentNode):
                kind = schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                walk(sel.selection_set.selections, kind, multiplier, path)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = fragments.get(sel.name.value)
                if fragment is not None:
                    walk(fragment.selection_set.selections, schema.get_type(fragment.type_condition.name.value),
                         multiplier, path)
            elif isinstance(sel, FieldNode):
                name = sel.name.value
                definition = getattr(parent, "fields", {}).get(name)
                if definition is None:
                    continue  # `__typename`, or a field validation already refused
                named = get_named_type(definition.type)
                here = [*path, sel.alias.value if sel.alias else name]
                inner = multiplier
                if named.name.endswith("Connection"):
                    size = _page_size(sel, name, argument(sel, "first"), argument(sel, "last"), here, out)
                    out.requests += multiplier
                    out.nodes += multiplier * size
                    inner = multiplier * size
                    if out.nodes > MAX_NODES and not any(e["type"] == "MAX_NODE_LIMIT_EXCEEDED" for e in out.errors):
                        out.errors.append(_error(
                            "MAX_NODE_LIMIT_EXCEEDED", here, sel,
                            f"By the time this query traverses to the {name} connection, it is requesting up to "
                            f"{out.nodes:,} possible nodes which exceeds the maximum limit of {MAX_NODES:,}."))
                if sel.selection_set is not None:
                    walk(sel.selection_set.selections, named, inner, here)

    walk(operation.selection_set.selections, schema.query_type, 1, [])
    return out


def _page_size(node: FieldNode, name: str, first: int | None, last: int | None, path: list[str],
               out: Analysis) -> int:
    if first is None and last is None:
        out.errors.append(_error("MISSING_PAGINATION_BOUNDARIES", path, node,
                                 f"You must provide a `first` or `last` value to properly paginate the `{name}` "
                                 "connection."))
        return MAX_PAGE
    for argument, value in (("first", first), ("last", last)):
        if value is not None and not 1 <= value <= MAX_PAGE:
            out.errors.append(_error("EXCESSIVE_PAGINATION", path, node,
                                     f"Requesting {value} records on the `{name}` connection exceeds the "
                                     f"`{argument}` limit of {MAX_PAGE} records."))
            return MAX_PAGE
    return first if first is not None else last  # type: ignore[return-value]


def _error(kind: str, path: list[str], node: FieldNode, message: str) -> dict:
    location = node.loc.source.get_location(node.loc.start) if node.loc else None
    locations = [{"line": location.line, "column": location.column}] if location else []
    return {"type": kind, "path": path, "locations": locations, "message": message}


def github_errors(formatted: list[dict]) -> list[dict]:
    """graphql-core's errors in GitHub's shape: `type` beside `path`, `locations` and `message`."""
    out = []
    for error in formatted:
        extensions = dict(error.get("extensions") or {})
        shaped = {"type": extensions.pop("type")} if "type" in extensions else {}
        for key in ("path", "locations", "message"):
            if key in error:
                shaped[key] = error[key]
        if extensions:
            shaped["extensions"] = extensions
        out.append(shaped)
    return out
