{#
    A staging model's source: the polled table and its delivered twin as one relation, so the
    latest-copy rule (`latest_copy_rank`) picks the newest copy of a record across both.

    The delivered table, `webhooks.<source>__<table>` (lake raw/webhooks/<source>__<table>, Postgres
    raw.webhooks__<source>__<table>), holds the records webhook deliveries and pushes carried,
    flattened with the polled table's columns (cc_events/delivered.py). A table no run has written
    yet (no Parquet file, no Postgres table: no delivery landed since this table exists, or no poll
    on a webhooks-only setup) is left out rather than failing the build. With the var
    `include_unlanded` (the streaming sidecar's compile of its live models, streaming/state/) both
    are always read: it supplies every relation itself.
#}
{% macro polled_and_delivered(source_name, table_name) -%}
    {#- Both source() calls run at parse time too: dbt records both as the model's sources. -#}
    {%- set polled = source(source_name, table_name) -%}
    {%- set delivered = source('webhooks', source_name ~ '__' ~ table_name) -%}
    {%- set landed = [] -%}
    {%- for relation in [polled, delivered] -%}
        {%- if not execute or var('include_unlanded', false) or has_landed(relation) -%}
            {%- do landed.append(relation) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(union_by_name(landed or [polled])) }}
{%- endmacro %}

{#
    Whether a source relation has anything to read: on DuckDB an external Parquet glob with at
    least one file (read_parquet fails on a glob that matches nothing), elsewhere an existing table.
#}
{% macro has_landed(relation) -%}
    {{ return(adapter.dispatch('has_landed', 'command_center')(relation)) }}
{%- endmacro %}

{% macro default__has_landed(relation) -%}
    {{ return(adapter.get_relation(database=relation.database, schema=relation.schema,
                                   identifier=relation.identifier) is not none) }}
{%- endmacro %}

{% macro duckdb__has_landed(relation) -%}
    {%- set found = modules.re.search("read_parquet[(] *'([^']+)'", relation.external or '') -%}
    {%- if not found -%}
        {{ return(default__has_landed(relation) if not relation.external else true) }}
    {%- endif -%}
    {%- set files = run_query("select count(*) from glob('" ~ found.group(1) ~ "')") -%}
    {{ return(files.rows[0][0] > 0) }}
{%- endmacro %}

{#
    `select *` of each relation, stacked with columns matched by name (the same table written at
    different times can order its columns differently); the first relation's columns.
#}
{% macro union_by_name(relations) -%}
    {{ return(adapter.dispatch('union_by_name', 'command_center')(relations)) }}
{%- endmacro %}

{% macro default__union_by_name(relations) -%}
    {%- set columns = adapter.get_columns_in_relation(relations[0]) if execute and relations | length > 1 else [] -%}
    {%- set selects = [] -%}
    {%- for relation in relations -%}
        {%- set present = adapter.get_columns_in_relation(relation) | map(attribute='name') | list if columns else [] -%}
        {%- set names = [] -%}
        {%- for column in columns -%}
            {%- set name = adapter.quote(column.name) -%}
            {%- do names.append(name if column.name in present else 'cast(null as ' ~ column.data_type ~ ') as ' ~ name) -%}
        {%- endfor -%}
        {%- do selects.append('select ' ~ (names | join(', ') or '*') ~ ' from ' ~ relation) -%}
    {%- endfor -%}
    {{ return(selects | join('\n    union all\n    ')) }}
{%- endmacro %}

{% macro duckdb__union_by_name(relations) -%}
    {%- set selects = [] -%}
    {%- for relation in relations -%}
        {%- do selects.append('select * from ' ~ relation) -%}
    {%- endfor -%}
    {{ return(selects | join('\n    union all by name\n    ')) }}
{%- endmacro %}
