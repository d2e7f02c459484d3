with

source as (

    select * from {{ source('linear', 'users') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as snapshot_rank
    from source

),

final as (

    select
        id as user_id,
        name as user_name,
        email,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
