{#
    A Linear state change can reach the lake twice: live, from the webhook's Issue update
    (`linear:issue:<issue id>:state_changed:<ms>`), and from the poll, as the issue's history
    entry (`linear:history:<id>`). The webhook does not carry the history entry's id, so unlike a
    GitHub pull request (one id both ways, one row after the staging dedupe) the two copies are
    paired: the same issue moved to the same state, the poll's entry the nearest to the webhook's
    update within `linear_state_change_pair_minutes()` and that update the nearest to it. A pair
    counts once: the poll's row (actor, exact time, the old state's name) under the webhook's id.

    This file is the one definition of that rule. dbt uses it (int_linear_state_changes_paired,
    fct_workflow_events), and so do the tier moves, which render it with plain Jinja and run it on
    DuckDB (resources/storage/tiers.py), so that the cold and archive tiers hold the same events as the
    warm one: keep these macros to SQL both warehouses run over their arguments, plus json_text;
    no ref(), adapter or dbt.* calls.
#}

{% macro linear_state_change_pair_minutes() -%}
    10
{%- endmacro %}

{#- One row per pair (event_id: the webhook's copy, polled_event_id: the poll's) among `events`. -#}
{% macro linear_state_change_pairs(events) -%}
with

state_changes as (

    select
        event_id,
        target_id,
        {{ json_text('payload', 'to') }} as to_state,
        event_at,
        event_id like 'linear:history:%' as is_polled
    from {{ events }}
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
        and polled.event_at between pushed.event_at - interval '{{ linear_state_change_pair_minutes() }} minutes'
        and pushed.event_at + interval '{{ linear_state_change_pair_minutes() }} minutes'

),

final as (

    select
        event_id,
        polled_event_id
    from candidates
    where rank_for_pushed = 1 and rank_for_polled = 1

)

select * from final
{%- endmacro %}

{#-
    Every row of `events` except the webhook copy of a pair, plus `counted_event_id`: the id the
    row is counted under (the webhook's for the poll's copy of a pair, else its own). `events`
    and `pairs` (the rows of linear_state_change_pairs) are names of CTEs or tables.
-#}
{% macro linear_state_changes_counted_once(events, pairs) -%}
select
    {{ events }}.*,
    coalesce(kept.event_id, {{ events }}.event_id) as counted_event_id
from {{ events }}
left join {{ pairs }} as kept
    on {{ events }}.event_id = kept.polled_event_id
left join {{ pairs }} as dropped
    on {{ events }}.event_id = dropped.event_id
where dropped.event_id is null
{%- endmacro %}
