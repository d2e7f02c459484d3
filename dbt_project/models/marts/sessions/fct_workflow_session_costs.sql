with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}
    where workflow_id is not null

),

workflow_agents as (

    select distinct
        workflow_id,
        agent_name
    from sessions

),

agent_lists as (

    select
        workflow_id,
        {{ sorted_string_agg('agent_name') }} as agents
    from workflow_agents
    group by workflow_id

),

session_totals as (

    select
        workflow_id,
        count(*) as session_count,
        sum(case when is_running then 1 else 0 end) as running_session_count,
        sum(case when session_status = 'failed' then 1 else 0 end) as failed_session_count,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(tokens_total) as tokens_total,
        sum(cost_usd) as cost_usd,
        max(cost_usd) as highest_session_cost_usd,
        min(started_at) as first_session_started_at,
        max(started_at) as last_session_started_at
    from sessions
    group by workflow_id

),

final as (

    select
        session_totals.workflow_id,
        session_totals.session_count,
        session_totals.running_session_count,
        session_totals.failed_session_count,
        session_totals.tokens_input,
        session_totals.tokens_output,
        session_totals.tokens_total,
        round(cast(session_totals.cost_usd as {{ dbt.type_numeric() }}), 4) as cost_usd,
        round(cast(session_totals.highest_session_cost_usd as {{ dbt.type_numeric() }}), 4) as highest_session_cost_usd,
        agent_lists.agents,
        session_totals.first_session_started_at,
        session_totals.last_session_started_at
    from session_totals
    left join agent_lists
        on session_totals.workflow_id = agent_lists.workflow_id

)

select * from final
