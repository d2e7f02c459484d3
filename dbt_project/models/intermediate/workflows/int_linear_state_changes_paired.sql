{#
    A Linear state change can reach the lake twice: live, from the webhook's Issue update
    (`linear:issue:<issue id>:state_changed:<ms>`), and from the poll, as the issue's history
    entry (`linear:history:<id>`). The webhook does not carry the history entry's id, so unlike a
    GitHub pull request (one id both ways, one row in staging) the two copies are paired here: the
    same issue moved to the same state, the poll's entry the nearest to the webhook's update within
    10 minutes and that update the nearest to it. fct_workflow_events keeps one row per pair.
#}
with

state_changes as (

    select
        event_id,
        target_id,
        {{ json_text('payload', 'to') }} as to_state,
        event_at,
        event_id like 'linear:history:%' as is_polled
    from {{ ref('stg_normalized__events') }}
    where event_type = 'linear.issue.state_changed'

),

pushed as (

    select * from state_changes where not is_polled

),

polled as (

    select * from state_changes where is_polled

),

candidates as (

    select
        pushed.event_id,
        polled.event_id as polled_event_id,
        row_number() over (
            partition by pushed.event_id
            order by abs(extract(epoch from (polled.event_at - pushed.event_at))), polled.event_id
        ) as rank_for_pushed,
        row_number() over (
            partition by polled.event_id
            order by abs(extract(epoch from (polled.event_at - pushed.event_at))), pushed.event_id
        ) as rank_for_polled
    from pushed
    inner join polled
        on pushed.target_id = polled.target_id
        and pushed.to_state = polled.to_state
        and polled.event_at between pushed.event_at - interval '10 minutes'
        and pushed.event_at + interval '10 minutes'

),

final as (

    select
        event_id,
        polled_event_id
    from candidates
    where rank_for_pushed = 1 and rank_for_polled = 1

)

select * from final
