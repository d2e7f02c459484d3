with

workflow_keys as (

    select * from {{ ref('int_correlation_keys_linked') }}

),

github_issues as (

    select * from {{ ref('stg_github__issues') }}

),

github_issues_ranked as (

    select
        workflow_keys.workflow_id,
        github_issues.github_issue_id,
        github_issues.issue_title,
        github_issues.is_closed,
        github_issues.closed_at,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by github_issues.created_at desc, github_issues.github_issue_id desc
        ) as recency_rank
    from workflow_keys
    inner join github_issues
        on workflow_keys.correlation_key = github_issues.correlation_key

),

final as (

    select
        workflow_id,
        github_issue_id,
        issue_title,
        is_closed,
        closed_at
    from github_issues_ranked
    where recency_rank = 1

)

select * from final
