with

source as (

    select * from {{ source('normalized', 'events') }}

),

copies_ranked as (

    -- Each snapshot of a source record re-emits its events; the latest copy is the truth.
    select
        *,
        row_number() over (
            partition by event_id
            order by _ingested_at desc, _partition_date desc
        ) as copy_rank
    from source

),

final as (

    select
        event_id,
        source,
        event_type,
        actor_id,
        actor_name,
        actor_type,
        actor_instance as actor_instance_id,
        target_type,
        target_id,
        target_title,
        target_url,
        correlation_id,
        parent_event_id,
        tags,
        payload,
        event_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
