with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('linear', 'issues') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id', prefer=["updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as linear_issue_id,
        'linear:' || upper(identifier) as correlation_key,
        upper(identifier) as issue_key,
        team_key,
        title as issue_title,
        priority,
        {{ linear_priority_label('priority') }} as priority_label,
        state_name,
        state_type,
        assignee_id,
        assignee_name,
        creator_id,
        url,
        created_at,
        updated_at,
        started_at,
        completed_at,
        canceled_at,
        cycle_id,
        cycle_number,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
