{#- Reads fct_workflow_events so the dashboard's event charts never scan the event table at request time. -#}
with

events as (

    select * from {{ ref('fct_workflow_events') }}

),

bucketed_events as (

    select
        {{ dbt.date_trunc('hour', 'event_at') }} as bucket_start_at,
        source,
        event_type,
        actor_type,
        workflow_id
    from events

),

final as (

    select
        bucket_start_at,
        source,
        event_type,
        actor_type,
        count(*) as event_count,
        sum(case when workflow_id is not null then 1 else 0 end) as workflow_event_count
    from bucketed_events
    group by bucket_start_at, source, event_type, actor_type

)

select * from final
