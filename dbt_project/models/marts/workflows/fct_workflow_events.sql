{#- On Postgres the sidecar reads this table by workflow and by time (`/api/events`): index both. -#}
{% if target.type == 'postgres' %}
    {{ config(indexes=[{'columns': ['workflow_id']}, {'columns': ['event_at']}]) }}
{% endif %}

with

events as (

    select * from {{ ref('stg_normalized__events') }}

),

events_correlated as (

    select * from {{ ref('int_events_correlated') }}

),

state_change_pairs as (

    select * from {{ ref('int_linear_state_changes_paired') }}

),

events_counted_once as (

    -- A Linear state change seen live and by the poll is one row: the poll's (it knows the old
    -- state's name) under the webhook's id, the one dashboards were sent live and the sidecar's
    -- live store waits to see here. The tier moves count the lake the same way.
    {{ linear_state_changes_counted_once('events', 'state_change_pairs') }}

),

final as (

    select
        events_counted_once.counted_event_id as event_id,
        events_correlated.workflow_id,
        events_counted_once.source,
        events_counted_once.event_type,
        events_counted_once.actor_id,
        events_counted_once.actor_name,
        events_counted_once.actor_type,
        events_counted_once.actor_instance_id,
        events_counted_once.target_type,
        events_counted_once.target_id,
        events_counted_once.target_title,
        events_counted_once.target_url,
        events_counted_once.correlation_id,
        events_counted_once.parent_event_id,
        events_correlated.correlation_key_count,
        events_correlated.correlation_keys,
        events_counted_once.tags,
        events_counted_once.payload,
        events_counted_once.event_at,
        events_counted_once.ingested_at
    from events_counted_once
    inner join events_correlated
        on events_counted_once.event_id = events_correlated.event_id

)

select * from final
