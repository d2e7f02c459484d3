{#- Per day and workflow, the agent sessions started that day on it: the operations reports
    (cc_assets/reports/) rank workflows by what their sessions cost in a period. -#}
with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}
    where workflow_id is not null and started_at is not null

),

daily_totals as (

    select
        cast(started_at as date) as session_date,
        workflow_id,
        count(*) as session_count,
        count(distinct agent_name) as agent_count,
        sum(tokens_total) as tokens_total,
        sum(cost_usd) as cost_usd
    from sessions
    group by cast(started_at as date), workflow_id

),

final as (

    select
        session_date,
        workflow_id,
        session_count,
        agent_count,
        tokens_total,
        round(cast(cost_usd as {{ dbt.type_numeric() }}), 4) as cost_usd
    from daily_totals

)

select * from final
