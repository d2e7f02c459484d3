with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('weather', 'opportunities') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id', prefer=["updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as opportunity_id,
        market,
        city,
        contract,
        forecast_high_f,
        market_implied_high_f,
        edge_pct,
        confidence,
        suggested_stake_usd,
        status as opportunity_status,
        detected_at,
        updated_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
