{#
    Aggregate: the values of `expression` sorted bytewise and joined by `delimiter` (nulls
    skipped; de-duplicate first if needed), the same string on every warehouse. DuckDB's ordered aggregates sort per
    group and take seconds over a million small groups; sorting the collected list is ~4x faster.
#}
{% macro sorted_string_agg(expression, delimiter="', '") -%}
    {{ return(adapter.dispatch('sorted_string_agg', 'command_center')(expression, delimiter)) }}
{%- endmacro %}

{% macro default__sorted_string_agg(expression, delimiter) -%}
    {{ dbt.listagg(expression, delimiter, 'order by ' ~ bytewise(expression)) }}
{%- endmacro %}

{% macro duckdb__sorted_string_agg(expression, delimiter) -%}
    array_to_string(list_sort(list({{ expression }}) filter (where {{ expression }} is not null)), {{ delimiter }})
{%- endmacro %}
