with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('cron', 'events') }}

),

copies_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as copy_rank
    from source

),

final as (

    select
        id as cron_event_id,
        seq,
        job as job_name,
        host,
        run_event,
        run_id,
        duration_ms,
        exit_code,
        message,
        occurred_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
