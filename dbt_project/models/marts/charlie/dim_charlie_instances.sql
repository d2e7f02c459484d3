{#- Reads fct_workflow_events rather than staging so the million-row event dedupe runs once per build. -#}
with

instances as (

    select * from {{ ref('stg_charlie__instances') }}

),

health_checks as (

    select * from {{ ref('stg_charlie__health') }}

),

events as (

    select * from {{ ref('fct_workflow_events') }}
    where actor_instance_id is not null

),

health_checks_ranked as (

    select
        *,
        row_number() over (
            partition by charlie_instance_id
            order by checked_at desc
        ) as recency_rank
    from health_checks

),

latest_health as (

    select * from health_checks_ranked
    where recency_rank = 1

),

event_totals as (

    select
        actor_instance_id as charlie_instance_id,
        count(*) as event_count,
        count(distinct workflow_id) as workflow_count,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at
    from events
    group by actor_instance_id

),

final as (

    select
        instances.charlie_instance_id,
        instances.instance_name,
        instances.instance_type,
        instances.instance_status,
        instances.github_login,
        instances.linear_user_id,
        instances.version,
        latest_health.health_status,
        coalesce(latest_health.is_healthy, false) as is_healthy,
        latest_health.queue_depth,
        latest_health.uptime_seconds,
        latest_health.checked_at as health_checked_at,
        coalesce(event_totals.event_count, 0) as event_count,
        coalesce(event_totals.workflow_count, 0) as workflow_count,
        event_totals.first_event_at,
        event_totals.last_event_at,
        instances.created_at
    from instances
    left join latest_health
        on instances.charlie_instance_id = latest_health.charlie_instance_id
    left join event_totals
        on instances.charlie_instance_id = event_totals.charlie_instance_id

)

select * from final
