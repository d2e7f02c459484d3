with

source as (

    select * from {{ source('normalized', 'event_keys') }}

),

final as (

    -- An event's keys are the union over all copies of the event.
    select
        event_id,
        correlation_key,
        min(key_type) as key_type,
        min(key_priority) as key_priority

    from source
    group by event_id, correlation_key

)

select * from final
