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

final as (

    select
        events.event_id,
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

)

select * from final
