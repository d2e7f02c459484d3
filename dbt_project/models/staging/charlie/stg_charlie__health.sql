with

source as (

    select * from {{ source('charlie', 'health') }}

),

copies_ranked as (

    select
        *,
        {{ latest_copy_rank(['instance_id', 'checked_at']) }} as copy_rank
    from source

),

final as (

    select
        instance_id as charlie_instance_id,
        status as health_status,
        status = 'healthy' as is_healthy,
        uptime_seconds,
        queue_depth,
        version,
        checked_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
