with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('github', 'issues') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id', prefer=["updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as github_issue_id,
        'github:' || lower(repo) || '#' || cast(number as {{ dbt.type_string() }}) as correlation_key,
        repo,
        number as issue_number,
        title as issue_title,
        state as issue_state,
        state = 'closed' as is_closed,
        user_login as author_login,
        html_url,
        created_at,
        updated_at,
        closed_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
