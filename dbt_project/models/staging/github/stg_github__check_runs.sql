with

source as (

    select * from {{ source('github', 'check_runs') }}

),

copies_ranked as (

    -- Fetched with each snapshot of its PR: the copy that saw it finish, then the latest.
    select
        *,
        row_number() over (
            partition by id
            order by case when status = 'completed' then 0 else 1 end, _ingested_at desc, pull_number desc
        ) as copy_rank
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
