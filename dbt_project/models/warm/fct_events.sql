{{ config(pre_hook="{{ warm_window_delete('event_at') }}") }}

with

workflow_events as (

    select * from {{ ref('fct_workflow_events') }}
    where {{ warm_window('event_at') }}

),

final as (

    select
        event_id,
        workflow_id,
        source,
        event_type,
        actor_id,
        actor_name,
        actor_type,
        actor_instance_id,
        target_type,
        target_id,
        target_title,
        target_url,
        event_at,
        ingested_at
    from workflow_events

)

select * from final
