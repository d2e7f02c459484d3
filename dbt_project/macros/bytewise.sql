{#
    Compare or sort text by bytes, whatever the database's default collation: workflow roots
    are chosen by the smallest md5 hex string (docs/contract.md section 3) and must be the same
    on every warehouse. DuckDB compares bytewise already; Postgres needs the "C" collation.
#}
{% macro bytewise(expression) -%}
    {{ return(adapter.dispatch('bytewise', 'command_center')(expression)) }}
{%- endmacro %}

{% macro default__bytewise(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro postgres__bytewise(expression) -%}
    ({{ expression }}) collate "C"
{%- endmacro %}
