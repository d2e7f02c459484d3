{#-
    Reads fct_workflow_events rather than staging so the million-row event dedupe runs once per
    build. Everything here is grouped by workflow: a filter on workflow_id reaches every step.
-#}
with

workflow_events as (

    select * from {{ ref('fct_workflow_events') }}
    where workflow_id is not null

),

workflow_actors as (

    select distinct
        workflow_id,
        actor_name
    from workflow_events
    where actor_name is not null

),

actor_totals as (

    select
        workflow_id,
        count(*) as actor_count,
        {{ sorted_string_agg('actor_name') }} as actors
    from workflow_actors
    group by workflow_id

),

workflow_sources as (

    select distinct
        workflow_id,
        source
    from workflow_events

),

source_totals as (

    select
        workflow_id,
        {{ sorted_string_agg('source') }} as sources
    from workflow_sources
    group by workflow_id

),

charlie_outcomes_ranked as (

    select
        workflow_id,
        event_type,
        row_number() over (
            partition by workflow_id
            order by event_at desc, event_id desc
        ) as recency_rank
    from workflow_events
    where event_type in ('charlie.task.completed', 'charlie.task.failed')

),

last_charlie_outcomes as (

    select
        workflow_id,
        event_type as last_charlie_outcome
    from charlie_outcomes_ranked
    where recency_rank = 1

),

event_totals as (

    select
        workflow_id,
        count(*) as event_count,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        max(case when source = 'charlie' then 1 else 0 end) = 1 as has_charlie_events,
        max(
            case
                when source = 'charlie' and event_type = 'charlie.task.completed' then event_at
            end
        ) as last_task_completed_at
    from workflow_events
    group by workflow_id

),

final as (

    select
        event_totals.workflow_id,
        event_totals.event_count,
        event_totals.first_event_at,
        event_totals.last_event_at,
        actor_totals.actor_count,
        actor_totals.actors,
        source_totals.sources,
        event_totals.has_charlie_events,
        event_totals.last_task_completed_at,
        last_charlie_outcomes.last_charlie_outcome
    from event_totals
    left join actor_totals
        on event_totals.workflow_id = actor_totals.workflow_id
    left join source_totals
        on event_totals.workflow_id = source_totals.workflow_id
    left join last_charlie_outcomes
        on event_totals.workflow_id = last_charlie_outcomes.workflow_id

)

select * from final
