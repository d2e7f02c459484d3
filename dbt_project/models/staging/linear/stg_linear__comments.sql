with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('linear', 'comments') }}

),

snapshots_ranked as (

    select
        *,
        {{ latest_copy_rank('id', prefer=["updated_at desc"]) }} as snapshot_rank
    from source

),

final as (

    select
        id as comment_id,
        issue_id as linear_issue_id,
        upper(issue_identifier) as issue_key,
        'linear:' || upper(issue_identifier) as issue_correlation_key,
        user_id as author_id,
        user_name as author_name,
        body as comment_body,
        updated_at > created_at as is_edited,
        created_at,
        updated_at,
        _ingested_at as ingested_at

    from snapshots_ranked
    where snapshot_rank = 1

)

select * from final
