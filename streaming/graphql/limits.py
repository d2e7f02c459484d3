"""How much one GraphQL operation may ask for: its depth and its cost, measured before anything is read.

Depth is how deeply fields nest (`workflows { workflows { events { events { actor { id } } } } }`
is 6). Cost counts the objects the answer can hold: every object field costs 1 per object of its
parent, and a list costs its length: the `limit` its page was asked with (or the argument's
default, as REST's), or `LIST_SIZE` for a list that takes none. So `workflows(limit: 50)` with each
workflow's `events(limit: 20)` costs about 50 × 20 × (an event's objects): the rows a query can
make the sidecar read, whatever aliases and fragments it is spelt with. Over `CC_GRAPHQL_MAX_DEPTH`
or `CC_GRAPHQL_MAX_COST`, the operation is refused before it runs, with an error that says both
numbers. Introspection (`__schema`, `__type`) is not counted: it reads no data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension

# What a list without a `limit` argument counts as (a chart's buckets, a breakdown's keys).
LIST_SIZE = 20
LIMITS = "LIMIT_EXCEEDED"


class Measure:
    """The depth and cost of one operation (fragments followed, variables applied)."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables
        self.depth = self.cost = 0

    def fields(self, selections: SelectionSetNode, parent: GraphQLObjectType,
               seen: frozenset[str] = frozenset()) -> Iterator[tuple[FieldNode, GraphQLObjectType]]:
        for node in selections.selections:
            if isinstance(node, FieldNode):
                yield node, parent
            elif isinstance(node, InlineFragmentNode):
                kind = self.schema.get_type(node.type_condition.name.value) if node.type_condition else parent
                yield from self.fields(node.selection_set, kind if isinstance(kind, GraphQLObjectType) else parent, seen)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = self.fragments.get(node.name.value)
                if fragment is not None:
                    kind = self.schema.get_type(fragment.type_condition.name.value)
                    yield from self.fields(fragment.selection_set,
                                           kind if isinstance(kind, GraphQLObjectType) else parent,
                                           seen | {node.name.value})

    def walk(self, selections: SelectionSetNode, parent: GraphQLObjectType, objects: int, page: int | None,
             depth: int) -> None:
        """`objects`: how many `parent` objects the answer holds; `page`: the length of the list
        below, as the field above asked (`limit`)."""
        for node, kind in self.fields(selections, parent):
            name = node.name.value
            definition = kind.fields.get(name)
            if name.startswith("__") or definition is None:
                continue  # introspection, or a field validation refuses anyway
            self.depth = max(self.depth, depth)
            target = get_named_type(definition.type)
            if not isinstance(target, GraphQLObjectType) or node.selection_set is None:
                continue
            limit = None
            if "limit" in definition.args:
                asked = get_argument_values(definition, node, self.variables).get("limit")
                limit = asked if isinstance(asked, int) else None
            if isinstance(get_nullable_type(definition.type), GraphQLList):
                # A list is as long as its own `limit`, or the one its page was asked with.
                size = limit if limit is not None else page if page is not None else LIST_SIZE
                count, below = objects * size, None
            else:  # an object: a page passes its `limit` on to its list
                count, below = objects, limit
            self.cost += count
            self.walk(node.selection_set, target, count, below, depth + 1)


def measure(schema: GraphQLSchema, document, operation_name: str | None,
            variables: dict[str, Any] | None) -> tuple[int, int] | None:
    """(depth, cost) of the operation to run; None when there is none to measure (validation says why)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (operation_name is None or (d.name and d.name.value == operation_name))]
    if len(operations) != 1:
        return None
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list) or root is None:
        return None  # bad variables: execution reports them
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    m = Measure(schema, fragments, coerced)
    m.walk(operation.selection_set, root, 1, None, 1)
    return m.depth, m.cost


class QueryLimits(SchemaExtension):
    """Refuses an operation deeper than `CC_GRAPHQL_MAX_DEPTH` or costlier than `CC_GRAPHQL_MAX_COST`
    (read from the sidecar's settings in the operation's context) before it runs."""

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        settings = ctx.context["settings"] if isinstance(ctx.context, dict) else None
        if settings is not None and ctx.graphql_document is not None:
            measured = measure(ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables)
            if measured is not None:
                depth, cost = measured
                if depth > settings.graphql_max_depth:
                    raise GraphQLError(
                        f"query depth {depth} is over this server's limit of {settings.graphql_max_depth} "
                        "(CC_GRAPHQL_MAX_DEPTH): ask for fewer nested fields", extensions={"code": LIMITS})
                if cost > settings.graphql_max_cost:
                    raise GraphQLError(
                        f"query cost {cost} is over this server's limit of {settings.graphql_max_cost} "
                        "(CC_GRAPHQL_MAX_COST): a list costs its `limit` times what each item asks for; ask for "
                        "smaller pages or fewer nested lists", extensions={"code": LIMITS})
        yield
