with

source as (

    -- Polled and delivered copies: one record, whichever way it came.
    {{ polled_and_delivered('github', 'commits') }}

),

listings_ranked as (

    -- A commit is listed by the default branch and by each pull request it belongs to;
    -- the pull request listing says more (which PR), so it wins (the newest PR if several),
    -- then the latest copy.
    select
        *,
        {{ latest_copy_rank(
            'sha', prefer=["case when pull_number is null then 1 else 0 end", "pull_number desc"]
        ) }} as listing_rank
    from source

),

final as (

    select
        sha as commit_sha,
        repo,
        pull_number as pr_number,
        case
            when pull_number is not null
                then 'github:' || lower(repo) || '#' || cast(pull_number as {{ dbt.type_string() }})
        end as pr_correlation_key,
        message as commit_message,
        author_login,
        html_url,
        authored_at,
        _ingested_at as ingested_at

    from listings_ranked
    where listing_rank = 1

)

select * from final
