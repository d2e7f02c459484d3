with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('github', 'pull_requests') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id', prefer=["updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as pull_request_id,
        'github:' || lower(repo) || '#' || cast(number as {{ dbt.type_string() }}) as correlation_key,
        repo,
        number as pr_number,
        title as pr_title,
        state as pr_state,
        merged_at is not null as is_merged,
        user_login as author_login,
        user_type as author_type,
        head_ref as head_branch,
        html_url,
        created_at,
        updated_at,
        closed_at,
        merged_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
