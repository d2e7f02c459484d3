{% macro latest_copy_rank(key, prefer=[]) -%}
{#-
    The rank of a landed copy among the copies of one record: 1 is the copy to keep.

    Sources are landed again and again (each snapshot, each re-run, each listing of a record),
    so every staging model keeps one copy per `key` (a column, or a list of columns). `prefer`
    are the record's own "this copy says more" orderings, first (e.g. `updated_at desc`); then
    the one tie-break every model shares: the copy landed last, then the later partition.
    Python's `cc_events.latest.latest_copies` applies the same order (tested against this macro),
    and `resources/storage/tiers.py` renders this macro for the tier moves.
-#}
row_number() over (
    partition by {{ [key] | join(', ') if key is string else key | join(', ') }}
    order by {% for clause in prefer %}{{ clause }}, {% endfor %}_ingested_at desc, _partition_date desc
)
{%- endmacro %}
