{#
    ISO 8601 text with a UTC offset (`2026-11-20T12:00:00+00:00`, how CDC row images carry
    timestamptz values) as a naive UTC timestamp, the lake's time convention. Going through
    timestamptz honours the offset; a plain cast to timestamp would drop it on DuckDB.
#}
{% macro utc_timestamp_from_iso(expression) -%}
    cast(cast({{ expression }} as timestamp with time zone) at time zone 'UTC' as {{ dbt.type_timestamp() }})
{%- endmacro %}
