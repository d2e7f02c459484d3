with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}

),

as_of as (

    select {{ as_of_timestamp() }} as as_of_at

),

sessions_as_of as (

    -- Sessions started after `as_of_at` have not happened yet for a pinned as-of moment.
    select
        sessions.*,
        cast(sessions.started_at as date) = cast(as_of.as_of_at as date) as is_started_today
    from sessions
    cross join as_of
    where sessions.started_at <= as_of.as_of_at

),

agent_totals as (

    select
        agent_name,
        max(charlie_instance_id) as charlie_instance_id,
        count(*) as session_count,
        sum(case when is_running then 1 else 0 end) as active_session_count,
        sum(case when session_status = 'failed' then 1 else 0 end) as failed_session_count,
        sum(case when is_started_today then 1 else 0 end) as sessions_today,
        count(distinct workflow_id) as workflow_count,
        sum(tokens_total) as tokens_total,
        sum(cost_usd) as cost_usd_total,
        sum(case when is_started_today then cost_usd else 0 end) as cost_usd_today,
        max(cost_usd) as highest_session_cost_usd,
        min(started_at) as first_session_started_at,
        max(started_at) as last_session_started_at
    from sessions_as_of
    group by agent_name

),

final as (

    select
        agent_totals.agent_name,
        agent_totals.charlie_instance_id,
        agent_totals.charlie_instance_id is not null as is_charlie_instance,
        agent_totals.session_count,
        agent_totals.active_session_count,
        agent_totals.failed_session_count,
        agent_totals.sessions_today,
        agent_totals.workflow_count,
        agent_totals.tokens_total,
        round(cast(agent_totals.cost_usd_total as {{ dbt.type_numeric() }}), 4) as cost_usd_total,
        round(cast(agent_totals.cost_usd_today as {{ dbt.type_numeric() }}), 4) as cost_usd_today,
        round(cast(agent_totals.highest_session_cost_usd as {{ dbt.type_numeric() }}), 4) as highest_session_cost_usd,
        agent_totals.first_session_started_at,
        agent_totals.last_session_started_at,
        as_of.as_of_at
    from agent_totals
    cross join as_of

)

select * from final
