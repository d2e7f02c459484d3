"""`adapter.dispatch`: the `duckdb__` implementation of a macro, else its `default__`."""

from jinja2 import pass_context


@pass_context
def dispatch(context, macro_name, macro_namespace=None):
    return context.get(f"duckdb__{macro_name}") or context[f"default__{macro_name}"]
