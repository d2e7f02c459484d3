{#
    Event counts per time bucket (`minute`, `hour`, `day`), source, event type and actor type:
    one row per bucket and combination. The warm 1 min and 1 day rollups (over the window being
    rebuilt) and the dashboard's 1 h mart are this one query at three grains.
#}
{% macro event_volume(events, grain, where=none) -%}
with

events as (

    select * from {{ events }}
    {%- if where %}
    where {{ where }}
    {%- endif %}

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
