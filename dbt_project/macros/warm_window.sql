{#
    The warm models are rebuilt one partition window at a time: Dagster passes the window of the
    partitions it runs as vars (`window_start`, `window_end`, 'YYYY-MM-DD HH:MM:SS', end exclusive).
    `warm_window(column)` is the filter; `warm_window_delete(column)` is the pre-hook that removes
    the window's old rows in the same transaction as the insert, so a re-run replaces them.
    Without vars (a hand-run `dbt build`) the window is everything.
#}
{% macro warm_window_bound(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is not none and not modules.re.match('^\\d{4}-\\d{2}-\\d{2}( \\d{2}:\\d{2}(:\\d{2})?)?$', value | string) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be 'YYYY-MM-DD[ HH:MM:SS]', got " ~ value) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{% macro warm_window(column) -%}
    {%- set start = warm_window_bound('window_start') -%}
    {%- set end = warm_window_bound('window_end') -%}
    {%- if start is not none %}{{ column }} >= cast('{{ start }}' as timestamp){% else %}1 = 1{% endif %}
    and {% if end is not none %}{{ column }} < cast('{{ end }}' as timestamp){% else %}1 = 1{% endif %}
{%- endmacro %}

{% macro warm_window_delete(column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ warm_window(column) }}
    {%- endif -%}
{%- endmacro %}
