with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('github', 'reviews') }}

),

copies_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as copy_rank
    from source

),

final as (

    select
        id as review_id,
        repo,
        pull_number as pr_number,
        'github:' || lower(repo) || '#' || cast(pull_number as {{ dbt.type_string() }}) as pr_correlation_key,
        user_login as reviewer_login,
        lower(state) as review_state,
        html_url,
        submitted_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
