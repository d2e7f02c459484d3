with

instances as (

    select * from {{ ref('dim_charlie_instances') }}

),

workflows as (

    select * from {{ ref('fct_workflows') }}
    where charlie_instance_id is not null

),

events as (

    select * from {{ ref('fct_workflow_events') }}
    where actor_instance_id is not null

),

as_of as (

    select {{ as_of_timestamp() }} as as_of_at

),

workflow_totals as (

    select
        workflows.charlie_instance_id,
        sum(case when workflows.status = 'active' then 1 else 0 end) as active_workflows,
        sum(
            case
                when {{ completed_on_as_of_day('workflows.completed_at', 'as_of.as_of_at') }} then 1
                else 0
            end
        ) as completed_today,
        sum(case when workflows.completed_at <= as_of.as_of_at then 1 else 0 end) as completed_total
    from workflows
    cross join as_of
    group by workflows.charlie_instance_id

),

recent_events as (

    select
        events.actor_instance_id as charlie_instance_id,
        count(*) as events_last_24h
    from events
    cross join as_of
    where
        events.event_at > {{ dbt.dateadd('hour', -24, 'as_of.as_of_at') }}
        and events.event_at <= as_of.as_of_at
    group by events.actor_instance_id

),

final as (

    select
        instances.charlie_instance_id,
        instances.instance_name,
        instances.instance_type,
        instances.health_status,
        coalesce(workflow_totals.active_workflows, 0) as active_workflows,
        coalesce(workflow_totals.completed_today, 0) as completed_today,
        coalesce(workflow_totals.completed_total, 0) as completed_total,
        coalesce(recent_events.events_last_24h, 0) as events_last_24h,
        as_of.as_of_at
    from instances
    cross join as_of
    left join workflow_totals
        on instances.charlie_instance_id = workflow_totals.charlie_instance_id
    left join recent_events
        on instances.charlie_instance_id = recent_events.charlie_instance_id

)

select * from final
