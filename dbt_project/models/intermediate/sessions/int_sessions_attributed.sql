{#
    Each agent session with the workflow it works for: the workflow of its `started` event
    (docs/contract_sources.md section 2), which names the session's issue and pull request keys
    and went through the same correlation as every other event. A session naming nothing has
    no workflow.
#}
with

sessions as (

    select * from {{ ref('stg_openclaw__sessions') }}

),

events_correlated as (

    select
        event_id,
        workflow_id
    from {{ ref('int_events_correlated') }}

),

final as (

    select
        sessions.session_id,
        events_correlated.workflow_id,
        sessions.agent_name,
        sessions.charlie_instance_id,
        sessions.session_status,
        sessions.is_running,
        sessions.model_name,
        sessions.tokens_input,
        sessions.tokens_output,
        sessions.tokens_total,
        sessions.cost_usd,
        sessions.issue_key,
        sessions.repo,
        sessions.pr_number,
        sessions.session_title,
        sessions.started_at,
        sessions.ended_at,
        sessions.updated_at
    from sessions
    left join events_correlated
        on events_correlated.event_id = 'openclaw:session:' || sessions.session_id || ':started'

)

select * from final
