{#
    The moment the marts describe ("today", "last 24 hours") as a naive UTC timestamp.
    `--vars '{as_of: "2026-11-23 12:00:00"}'` pins it (reproducible builds and tests);
    unset, it is the current UTC time.
#}
{% macro as_of_timestamp() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of -%}
        cast('{{ as_of | string | replace("'", "''") }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        {{ utc_now() }}
    {%- endif -%}
{%- endmacro %}


{#- The current time as a naive UTC timestamp, the lake's time convention. -#}
{% macro utc_now() -%}
    {{ return(adapter.dispatch('utc_now', 'command_center')()) }}
{%- endmacro %}

{% macro default__utc_now() -%}
    cast(({{ dbt.current_timestamp() }} at time zone 'UTC') as {{ dbt.type_timestamp() }})
{%- endmacro %}
