{#
    Workflows are the connected components of the event-key graph (docs/contract.md section 3):
    two keys are linked when one event names both. A component's root, and so every member's
    workflow_id, is its key with the lowest (key_priority, md5(key)).

    The walk is a recursive CTE that runs unchanged on DuckDB and Postgres. Instead of the full
    transitive closure (every key paired with every key it reaches, quadratic per component),
    each key starts as a candidate root and a candidate only spreads to neighbours that rank
    after it. The true root ranks before every key of its component, so it reaches all of them;
    any other candidate stops at the first key that outranks it. `union` (not `union all`)
    drops rows already seen, which also ends the walk on cycles.
#}

with recursive

event_keys as (

    select * from {{ ref('stg_normalized__event_keys') }}

),

events as (

    select event_id from {{ ref('stg_normalized__events') }}

),

live_event_keys as (

    -- Keys of events that exist: a key row without its event cannot join workflows a user sees.
    select
        event_keys.event_id,
        event_keys.correlation_key,
        event_keys.key_type,
        event_keys.key_priority
    from event_keys
    inner join events
        on event_keys.event_id = events.event_id

),

correlation_keys as (

    select
        correlation_key,
        min(key_type) as key_type,
        min(key_priority) as key_priority,
        md5(correlation_key) as key_md5
    from live_event_keys
    group by correlation_key

),

event_anchors as (

    -- One key per event; linking every other key of the event to it connects them all
    -- without the all-pairs blow-up of events that name many keys.
    select
        event_id,
        min(correlation_key) as anchor_key
    from live_event_keys
    group by event_id

),

anchored_keys as (

    select
        event_anchors.anchor_key,
        live_event_keys.correlation_key
    from live_event_keys
    inner join event_anchors
        on live_event_keys.event_id = event_anchors.event_id
    where live_event_keys.correlation_key <> event_anchors.anchor_key

),

key_links as (

    -- Undirected: both directions, so a root can be reached from either end of a link.
    select
        anchor_key as from_key,
        correlation_key as to_key
    from anchored_keys

    union

    select
        correlation_key as from_key,
        anchor_key as to_key
    from anchored_keys

),

ranked_key_links as materialized (

    -- The target's rank rides on the link, so each step of the walk below is one equi-join
    -- (a second join to the keys lets Postgres' planner, which has no statistics for CTEs,
    -- pick a nested loop that compares every key with every candidate).
    select
        key_links.from_key,
        key_links.to_key,
        correlation_keys.key_priority as to_priority,
        correlation_keys.key_md5 as to_md5
    from key_links
    inner join correlation_keys
        on key_links.to_key = correlation_keys.correlation_key

),

candidate_roots as (

    select
        correlation_key,
        correlation_key as root_key,
        key_priority as root_priority,
        key_md5 as root_md5
    from correlation_keys

    union

    select
        ranked_key_links.to_key as correlation_key,
        candidate_roots.root_key,
        candidate_roots.root_priority,
        candidate_roots.root_md5
    from candidate_roots
    inner join ranked_key_links
        on candidate_roots.correlation_key = ranked_key_links.from_key
    where
        ranked_key_links.to_priority > candidate_roots.root_priority
        or (
            ranked_key_links.to_priority = candidate_roots.root_priority
            and {{ bytewise('ranked_key_links.to_md5') }} > {{ bytewise('candidate_roots.root_md5') }}
        )

),

roots_ranked as (

    select
        correlation_key,
        root_key,
        row_number() over (
            partition by correlation_key
            order by root_priority, {{ bytewise('root_md5') }}
        ) as root_rank
    from candidate_roots

),

final as (

    select
        correlation_keys.correlation_key,
        correlation_keys.key_type,
        correlation_keys.key_priority,
        roots_ranked.root_key as workflow_id,
        correlation_keys.correlation_key = roots_ranked.root_key as is_workflow_root
    from correlation_keys
    inner join roots_ranked
        on
            correlation_keys.correlation_key = roots_ranked.correlation_key
            and roots_ranked.root_rank = 1

)

select * from final
