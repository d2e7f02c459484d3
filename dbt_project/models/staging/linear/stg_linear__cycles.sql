with

source as (

    select * from {{ source('linear', 'cycles') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as snapshot_rank
    from source

),

final as (

    select
        id as cycle_id,
        team_id,
        upper(team_key) as team_key,
        number as cycle_number,
        name as cycle_name,
        starts_at,
        ends_at,
        completed_at,
        completed_at is not null as is_completed,
        created_at,
        updated_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
