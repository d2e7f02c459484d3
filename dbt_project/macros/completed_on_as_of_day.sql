{#
    True when `completed_at` falls on the as-of day and not after the as-of moment: what the
    workload and dashboard marts count as "completed today".
#}
{% macro completed_on_as_of_day(completed_at, as_of_at) -%}
    ({{ completed_at }} <= {{ as_of_at }} and cast({{ completed_at }} as date) = cast({{ as_of_at }} as date))
{%- endmacro %}
