with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('openclaw', 'sessions') }}

),

snapshots_ranked as (

    -- A session is re-snapshotted on every day it was updated; the latest update is the truth.
    select
        *,
        {{ latest_copy_rank('id', prefer=["updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as session_id,
        agent as agent_name,
        instance_id as charlie_instance_id,
        status as session_status,
        status = 'running' as is_running,
        model as model_name,
        coalesce(tokens_input, 0) as tokens_input,
        coalesce(tokens_output, 0) as tokens_output,
        coalesce(tokens_input, 0) + coalesce(tokens_output, 0) as tokens_total,
        coalesce(cost_usd, 0) as cost_usd,
        issue_key,
        repo,
        pr_number,
        title as session_title,
        started_at,
        ended_at,
        updated_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
