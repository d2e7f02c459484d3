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

final as (

    select
        -- A Linear state change seen live and by the poll is one row: the poll's (it knows the
        -- old state's name) under the webhook's id, the one dashboards were sent live and the
        -- sidecar's live store waits to see here.
        coalesce(kept.event_id, events.event_id) as event_id,
        events_correlated.workflow_id,
        events.source,
        events.event_type,
        events.actor_id,
        events.actor_name,
        events.actor_type,
        events.actor_instance_id,
        events.target_type,
        events.target_id,
        events.target_title,
        events.target_url,
        events.correlation_id,
        events.parent_event_id,
        events_correlated.correlation_key_count,
        events_correlated.correlation_keys,
        events.tags,
        events.payload,
        events.event_at,
        events.ingested_at
    from events
    inner join events_correlated
        on events.event_id = events_correlated.event_id
    left join state_change_pairs as kept
        on events.event_id = kept.polled_event_id
    left join state_change_pairs as dropped
        on events.event_id = dropped.event_id
    where dropped.event_id is null

)

select * from final
