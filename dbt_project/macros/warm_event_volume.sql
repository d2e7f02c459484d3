{#
    Event counts per time bucket (`minute`, `day`), source, event type and actor type, over the
    warm window being rebuilt: one row per bucket and combination. The 1 min and 1 day warm
    rollups are this one query at two grains.
#}
{% macro warm_event_volume(grain) -%}
with

events as (

    select * from {{ ref('fct_events') }}
    where {{ warm_window('event_at') }}

),

bucketed_events as (

    select
        {{ dbt.date_trunc(grain, 'event_at') }} as bucket_start_at,
        source,
        event_type,
        actor_type,
        workflow_id
    from events

),

final as (

    select
        cast(bucket_start_at as timestamp) as bucket_start_at,
        source,
        event_type,
        actor_type,
        count(*) as event_count,
        sum(case when workflow_id is not null then 1 else 0 end) as workflow_event_count
    from bucketed_events
    group by bucket_start_at, source, event_type, actor_type

)

select * from final
{%- endmacro %}
