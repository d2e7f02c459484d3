with

source as (

    select * from {{ source('linear', 'teams') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as snapshot_rank
    from source

),

final as (

    select
        id as team_id,
        upper(key) as team_key,
        name as team_name,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
