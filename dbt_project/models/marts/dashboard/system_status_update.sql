{#-
    The `system.status.update` message the UI's live feed shows (the seeds' sample payload
    {sessions: {active, total_cost, highest_cost}, cron_jobs: {total, healthy, failed},
    trading_bot: {status, daily_pnl}}), flattened into one row as of `as_of_at`.
-#}
with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}

),

trades as (

    select * from {{ ref('int_trades_rebuilt') }}

),

as_of as (

    select {{ as_of_timestamp() }} as as_of_at

),

session_totals as (

    -- Cost figures are the as-of day's (sessions started that day); active is running now.
    select
        sum(case when sessions.is_running then 1 else 0 end) as sessions_active,
        sum(
            case
                when cast(sessions.started_at as date) = cast(as_of.as_of_at as date)
                    then sessions.cost_usd
                else 0
            end
        ) as sessions_total_cost,
        max(
            case
                when cast(sessions.started_at as date) = cast(as_of.as_of_at as date)
                    then sessions.cost_usd
            end
        ) as sessions_highest_cost
    from sessions
    cross join as_of
    where sessions.started_at <= as_of.as_of_at

),

cron_totals as (

    select * from {{ ref('fct_cron_job_totals') }}

),

trades_as_of as (

    select
        trades.*,
        cast(trades.executed_at as date) = cast(as_of.as_of_at as date) as is_executed_today
    from trades
    cross join as_of
    where trades.executed_at <= as_of.as_of_at

),

trades_ranked as (

    select
        trade_mode,
        row_number() over (
            order by executed_at desc, trade_id desc
        ) as recency_rank
    from trades_as_of

),

latest_trade as (

    select trade_mode from trades_ranked
    where recency_rank = 1

),

trading_totals as (

    -- The bot's P&L today in the mode it trades in now; paper and live money do not add up.
    select
        max(latest_trade.trade_mode) as trade_mode,
        sum(
            case
                when trades_as_of.is_executed_today then trades_as_of.pnl
            end
        ) as trading_daily_pnl
    from latest_trade
    left join trades_as_of
        on latest_trade.trade_mode = trades_as_of.trade_mode

),

final as (

    select
        coalesce(session_totals.sessions_active, 0) as sessions_active,
        round(cast(coalesce(session_totals.sessions_total_cost, 0) as {{ dbt.type_numeric() }}), 2) as sessions_total_cost,
        round(cast(coalesce(session_totals.sessions_highest_cost, 0) as {{ dbt.type_numeric() }}), 2) as sessions_highest_cost,
        coalesce(cron_totals.cron_jobs_total, 0) as cron_jobs_total,
        coalesce(cron_totals.cron_jobs_healthy, 0) as cron_jobs_healthy,
        coalesce(cron_totals.cron_jobs_failed, 0) as cron_jobs_failed,
        case trading_totals.trade_mode
            when 'paper' then 'paper_trading'
            when 'live' then 'live_trading'
            else 'idle'
        end as trading_bot_status,
        round(cast(coalesce(trading_totals.trading_daily_pnl, 0) as {{ dbt.type_numeric() }}), 2) as trading_daily_pnl,
        as_of.as_of_at
    from as_of
    cross join session_totals
    cross join cron_totals
    cross join trading_totals

)

select * from final
