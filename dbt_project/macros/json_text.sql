{#
    A top-level field of a JSON object held as text, as text: SQL null when the field is missing
    or JSON null, strings unquoted, numbers and booleans as printed (cast the result). The CDC row
    images are JSON text on every warehouse; DuckDB reads them with json_extract_string, Postgres
    with ->> on the text cast to json.
#}
{% macro json_text(json_column, field) -%}
    {{ return(adapter.dispatch('json_text', 'command_center')(json_column, field)) }}
{%- endmacro %}

{% macro default__json_text(json_column, field) -%}
    (cast({{ json_column }} as json) ->> '{{ field }}')
{%- endmacro %}

{% macro duckdb__json_text(json_column, field) -%}
    json_extract_string({{ json_column }}, '$."{{ field }}"')
{%- endmacro %}
