{#- Per day, what fct_agent_session_costs gives only for "today": the daily report reads it. -#}
with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}

),

daily_totals as (

    select
        cast(started_at as date) as session_date,
        agent_name,
        max(charlie_instance_id) as charlie_instance_id,
        count(*) as session_count,
        sum(case when session_status = 'completed' then 1 else 0 end) as completed_session_count,
        sum(case when session_status = 'failed' then 1 else 0 end) as failed_session_count,
        sum(case when is_running then 1 else 0 end) as running_session_count,
        count(distinct workflow_id) as workflow_count,
        sum(tokens_total) as tokens_total,
        sum(cost_usd) as cost_usd
    from sessions
    where started_at is not null
    group by cast(started_at as date), agent_name

),

final as (

    select
        session_date,
        agent_name,
        charlie_instance_id,
        session_count,
        completed_session_count,
        failed_session_count,
        running_session_count,
        workflow_count,
        tokens_total,
        round(cast(cost_usd as {{ dbt.type_numeric() }}), 4) as cost_usd
    from daily_totals

)

select * from final
