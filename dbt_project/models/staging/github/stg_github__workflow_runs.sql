with

source as (

    select * from {{ source('github', 'workflow_runs') }}

),

snapshots_ranked as (

    -- A run is listed again while it runs and when it is re-run: the latest attempt and update win.
    select
        *,
        {{ latest_copy_rank('id', prefer=["coalesce(run_attempt, 1) desc", "updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as workflow_run_id,
        repo,
        workflow_name,
        run_number,
        coalesce(run_attempt, 1) as run_attempt,
        event as trigger_event,
        status as run_status,
        conclusion,
        head_branch,
        head_sha,
        pr_number,
        case
            when pr_number is not null
                then 'github:' || lower(repo) || '#' || cast(pr_number as {{ dbt.type_string() }})
        end as pr_correlation_key,
        actor_login,
        html_url,
        created_at,
        run_started_at,
        updated_at,
        case when status = 'completed' then updated_at end as completed_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
