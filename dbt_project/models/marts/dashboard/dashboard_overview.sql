with

workflows as (

    select * from {{ ref('fct_workflows') }}

),

events as (

    select * from {{ ref('fct_workflow_events') }}

),

instances as (

    select * from {{ ref('dim_charlie_instances') }}

),

as_of as (

    select {{ as_of_timestamp() }} as as_of_at

),

workflow_totals as (

    select
        count(*) as workflows_total,
        sum(case when workflows.status = 'pending' then 1 else 0 end) as workflows_pending,
        sum(case when workflows.status = 'active' then 1 else 0 end) as workflows_active,
        sum(case when workflows.status = 'completed' then 1 else 0 end) as workflows_completed,
        sum(case when workflows.status = 'canceled' then 1 else 0 end) as workflows_canceled,
        sum(case when workflows.status = 'failed' then 1 else 0 end) as workflows_failed,
        sum(
            case
                when {{ completed_on_as_of_day('workflows.completed_at', 'as_of.as_of_at') }} then 1
                else 0
            end
        ) as completed_today,
        avg(workflows.cycle_time_hours) as avg_cycle_time_hours,
        percentile_cont(0.5) within group (order by workflows.cycle_time_hours) as median_cycle_time_hours
    from workflows
    cross join as_of

),

event_totals as (

    select
        count(*) as events_total,
        sum(
            case
                when
                    events.event_at > {{ dbt.dateadd('hour', -24, 'as_of.as_of_at') }}
                    and events.event_at <= as_of.as_of_at
                    then 1
                else 0
            end
        ) as events_last_24h
    from events
    cross join as_of

),

instance_totals as (

    select
        count(*) as instances_total,
        sum(case when is_healthy then 1 else 0 end) as instances_healthy
    from instances

),

final as (

    select
        as_of.as_of_at,
        workflow_totals.workflows_total,
        coalesce(workflow_totals.workflows_pending, 0) as workflows_pending,
        coalesce(workflow_totals.workflows_active, 0) as workflows_active,
        coalesce(workflow_totals.workflows_completed, 0) as workflows_completed,
        coalesce(workflow_totals.workflows_canceled, 0) as workflows_canceled,
        coalesce(workflow_totals.workflows_failed, 0) as workflows_failed,
        coalesce(workflow_totals.completed_today, 0) as completed_today,
        event_totals.events_total,
        coalesce(event_totals.events_last_24h, 0) as events_last_24h,
        instance_totals.instances_total,
        coalesce(instance_totals.instances_healthy, 0) as instances_healthy,
        round(cast(workflow_totals.avg_cycle_time_hours as {{ dbt.type_numeric() }}), 2) as avg_cycle_time_hours,
        round(cast(workflow_totals.median_cycle_time_hours as {{ dbt.type_numeric() }}), 2) as median_cycle_time_hours
    from as_of
    cross join workflow_totals
    cross join event_totals
    cross join instance_totals

)

select * from final
