{#
    On Postgres this is a table with fresh statistics, not a view: the correlation joins a
    million events to their keys, and over a view the planner guesses 200 groups and the build
    of int_events_correlated ran for over 14 minutes at 1M events. DuckDB reads the lake as is.
#}
{{ config(
    materialized=('table' if target.type == 'postgres' else 'view'),
    post_hook=(['analyze {{ this }}'] if target.type == 'postgres' else []),
) }}

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
