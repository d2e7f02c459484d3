with

source as (

    select * from {{ source('charlie', 'instances') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as snapshot_rank
    from source

),

final as (

    select
        id as charlie_instance_id,
        name as instance_name,
        instance_type,
        status as instance_status,
        github_login,
        linear_user_id,
        version,
        created_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
