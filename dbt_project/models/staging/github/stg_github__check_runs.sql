with

source as (

    select * from {{ source('github', 'check_runs') }}

),

copies_ranked as (

    -- Fetched with each snapshot of its PR (and of each PR sharing its head): the copy that saw
    -- it finish, then the newest PR's, then the latest.
    select
        *,
        {{ latest_copy_rank('id', prefer=["case when status = 'completed' then 0 else 1 end", "pull_number desc"]) }} as copy_rank
    from source

),

final as (

    select
        id as check_run_id,
        repo,
        pull_number as pr_number,
        'github:' || lower(repo) || '#' || cast(pull_number as {{ dbt.type_string() }}) as pr_correlation_key,
        check_name,
        head_sha,
        status as check_status,
        conclusion,
        app_slug,
        html_url,
        started_at,
        completed_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
