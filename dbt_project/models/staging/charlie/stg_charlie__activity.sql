with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('charlie', 'activity') }}

),

copies_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as copy_rank
    from source

),

final as (

    select
        id as activity_id,
        instance_id as charlie_instance_id,
        activity_type,
        issue_key,
        repo,
        pr_number,
        correlation_id,
        message,
        occurred_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
