{#- Per hour, what fct_agent_sessions_daily gives per day: the page's cost chart over 1h to 30d. -#}
with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}

),

bucketed_sessions as (

    select
        {{ dbt.date_trunc('hour', 'started_at') }} as bucket_start_at,
        agent_name,
        session_status,
        tokens_total,
        cost_usd
    from sessions
    where started_at is not null

),

final as (

    select
        cast(bucket_start_at as timestamp) as bucket_start_at,
        agent_name,
        count(*) as session_count,
        sum(case when session_status = 'failed' then 1 else 0 end) as failed_session_count,
        sum(tokens_total) as tokens_total,
        round(cast(sum(cost_usd) as {{ dbt.type_numeric() }}), 4) as cost_usd
    from bucketed_sessions
    group by bucket_start_at, agent_name

)

select * from final
