with

events as (

    select event_id from {{ ref('stg_normalized__events') }}

),

event_keys as (

    select
        event_id,
        correlation_key
    from {{ ref('stg_normalized__event_keys') }}

),

keys_linked as (

    select
        correlation_key,
        workflow_id
    from {{ ref('int_correlation_keys_linked') }}

),

event_workflows as (

    -- All keys of one event share a workflow (they are linked through the event), so min()
    -- only picks that one value.
    select
        event_keys.event_id,
        min(keys_linked.workflow_id) as workflow_id,
        count(*) as correlation_key_count,
        {{ sorted_string_agg('event_keys.correlation_key') }} as correlation_keys
    from event_keys
    inner join keys_linked
        on event_keys.correlation_key = keys_linked.correlation_key
    group by event_keys.event_id

),

final as (

    select
        events.event_id,
        event_workflows.workflow_id,
        coalesce(event_workflows.correlation_key_count, 0) as correlation_key_count,
        event_workflows.correlation_keys
    from events
    left join event_workflows
        on events.event_id = event_workflows.event_id

)

select * from final
