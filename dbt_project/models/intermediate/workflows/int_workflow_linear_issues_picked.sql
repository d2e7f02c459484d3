with

workflow_keys as (

    select * from {{ ref('int_correlation_keys_linked') }}

),

linear_issues as (

    select * from {{ ref('stg_linear__issues') }}

),

linear_issues_ranked as (

    -- Linear keys all have priority 1, so the first by md5 is the workflow's root whenever
    -- the root's issue has been ingested.
    select
        workflow_keys.workflow_id,
        linear_issues.linear_issue_id,
        linear_issues.issue_key,
        linear_issues.team_key,
        linear_issues.issue_title,
        linear_issues.state_type,
        linear_issues.priority_label,
        linear_issues.assignee_id,
        linear_issues.assignee_name,
        linear_issues.completed_at,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by {{ bytewise('md5(workflow_keys.correlation_key)') }}
        ) as linear_issue_rank
    from workflow_keys
    inner join linear_issues
        on workflow_keys.correlation_key = linear_issues.correlation_key

),

final as (

    select
        workflow_id,
        linear_issue_id,
        issue_key,
        team_key,
        issue_title,
        state_type,
        priority_label,
        assignee_id,
        assignee_name,
        completed_at
    from linear_issues_ranked
    where linear_issue_rank = 1

)

select * from final
