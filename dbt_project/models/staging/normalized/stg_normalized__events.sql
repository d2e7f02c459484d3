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

    select * from {{ source('normalized', 'events') }}

),

copies_ranked as (

    -- Each snapshot of a source record re-emits its events; the latest copy is the truth.
    select
        *,
        {{ latest_copy_rank('event_id') }} as copy_rank
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
