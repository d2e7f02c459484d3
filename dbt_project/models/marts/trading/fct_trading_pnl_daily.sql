with

trades as (

    select * from {{ ref('int_trades_rebuilt') }}

),

daily_totals as (

    select
        cast(executed_at as date) as trade_date,
        trade_mode,
        count(*) as trade_count,
        sum(case when side = 'buy' then 1 else 0 end) as buy_count,
        sum(case when side = 'sell' then 1 else 0 end) as sell_count,
        sum(quantity * price) as notional_usd,
        sum(case when pnl is not null then 1 else 0 end) as trades_with_pnl,
        sum(case when pnl > 0 then 1 else 0 end) as winning_trades,
        sum(case when pnl < 0 then 1 else 0 end) as losing_trades,
        sum(pnl) as realized_pnl
    from trades
    group by cast(executed_at as date), trade_mode

),

final as (

    select
        trade_date,
        trade_mode,
        trade_count,
        buy_count,
        sell_count,
        round(notional_usd, 2) as notional_usd,
        trades_with_pnl,
        winning_trades,
        losing_trades,
        round(coalesce(realized_pnl, 0), 2) as realized_pnl,
        case
            when trades_with_pnl > 0
                then cast(
                    round(cast(winning_trades as {{ dbt.type_numeric() }}) / trades_with_pnl, 4)
                    as {{ dbt.type_numeric() }}
                )
        end as win_rate
    from daily_totals

)

select * from final
