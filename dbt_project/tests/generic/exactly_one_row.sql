{#- The model has exactly one row (a single-row summary such as a dashboard headline). -#}
{% test exactly_one_row(model) %}

with

row_counts as (

    select count(*) as row_count from {{ model }}

)

select * from row_counts
where row_count <> 1

{% endtest %}
