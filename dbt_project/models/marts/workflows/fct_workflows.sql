{#-
    One row per workflow: the parts each source contributes are picked per workflow in
    intermediate/workflows/ (int_workflow_*); here they are joined and the status decided.
    On Postgres the sidecar pages this table newest first (`/api/workflows`): a cursor's next page
    is an index range scan, read backwards, from the last row it showed.
-#}
{% if target.type == 'postgres' %}
    {{ config(indexes=[{'columns': ['last_event_at', 'workflow_id']}]) }}
{% endif %}
with

workflow_events as (

    select * from {{ ref('int_workflow_events_summarized') }}

),

linear_issues as (

    select * from {{ ref('int_workflow_linear_issues_picked') }}

),

pull_requests as (

    select * from {{ ref('int_workflow_pull_requests_picked') }}

),

github_issues as (

    select * from {{ ref('int_workflow_github_issues_picked') }}

),

ci_runs as (

    select * from {{ ref('int_workflow_ci_runs_summarized') }}

),

session_costs as (

    select * from {{ ref('fct_workflow_session_costs') }}

),

charlie_instances as (

    select * from {{ ref('stg_charlie__instances') }}

),

charlie_linear_users as (

    -- One instance per Linear user, should two registrations ever share one.
    select
        linear_user_id,
        min(charlie_instance_id) as charlie_instance_id
    from charlie_instances
    where linear_user_id is not null
    group by linear_user_id

),

workflows_joined as (

    select
        workflow_events.workflow_id,
        workflow_events.event_count,
        workflow_events.first_event_at,
        workflow_events.last_event_at,
        workflow_events.actor_count,
        workflow_events.actors,
        workflow_events.sources,

        linear_issues.linear_issue_id,
        linear_issues.issue_key as linear_issue_key,
        linear_issues.team_key as linear_team_key,
        linear_issues.issue_title as linear_title,
        linear_issues.state_type as linear_state_type,
        linear_issues.priority_label as linear_priority_label,
        linear_issues.assignee_id,
        linear_issues.assignee_name,
        linear_issues.completed_at as linear_completed_at,

        pull_requests.pull_request_id,
        pull_requests.repo as pr_repo,
        pull_requests.pr_number,
        pull_requests.pr_title,
        pull_requests.pr_state,
        pull_requests.is_merged as is_pr_merged,
        pull_requests.merged_at as pr_merged_at,
        coalesce(pull_requests.pr_count, 0) as pr_count,

        github_issues.github_issue_id,
        github_issues.issue_title as github_issue_title,
        github_issues.is_closed as is_github_issue_closed,
        github_issues.closed_at as github_issue_closed_at,

        workflow_events.last_charlie_outcome,
        workflow_events.has_charlie_events,
        workflow_events.last_task_completed_at,

        charlie_linear_users.charlie_instance_id,

        coalesce(session_costs.session_count, 0) as session_count,
        coalesce(session_costs.cost_usd, 0) as session_cost_usd,

        ci_runs.last_ci_conclusion,
        ci_runs.last_ci_completed_at,
        coalesce(ci_runs.ci_run_count, 0) as ci_run_count,
        coalesce(ci_runs.ci_failed_run_count, 0) as ci_failed_run_count

    from workflow_events
    left join linear_issues
        on workflow_events.workflow_id = linear_issues.workflow_id
    left join pull_requests
        on workflow_events.workflow_id = pull_requests.workflow_id
    left join github_issues
        on workflow_events.workflow_id = github_issues.workflow_id
    left join charlie_linear_users
        on linear_issues.assignee_id = charlie_linear_users.linear_user_id
    left join session_costs
        on workflow_events.workflow_id = session_costs.workflow_id
    left join ci_runs
        on workflow_events.workflow_id = ci_runs.workflow_id

),

workflows_with_status as (

    -- Status comes from the most authoritative system present: Linear, then the latest pull
    -- request, then a GitHub issue, then Charlie's own task events.
    select
        *,
        case
            when linear_issue_id is not null then 'linear'
            when pull_request_id is not null then 'github_pr'
            when github_issue_id is not null then 'github_issue'
            when has_charlie_events then 'charlie'
            else 'events'
        end as status_source,
        case
            when linear_issue_id is not null
                then
                    case linear_state_type
                        when 'started' then 'active'
                        when 'completed' then 'completed'
                        when 'canceled' then 'canceled'
                        else 'pending'
                    end
            when pull_request_id is not null
                then
                    case
                        when is_pr_merged then 'completed'
                        when pr_state = 'closed' then 'canceled'
                        else 'active'
                    end
            when github_issue_id is not null
                then
                    case when is_github_issue_closed then 'completed' else 'active' end
            when last_charlie_outcome = 'charlie.task.completed' then 'completed'
            when last_charlie_outcome = 'charlie.task.failed' then 'failed'
            else 'active'
        end as status
    from workflows_joined

),

workflows_with_completion as (

    -- Completion follows the status: only completed workflows have a completed_at.
    select
        *,
        case
            when status = 'completed' then
                coalesce(linear_completed_at, pr_merged_at, github_issue_closed_at, last_task_completed_at)
        end as completed_at
    from workflows_with_status

),

final as (

    select
        workflow_id,
        coalesce(linear_title, pr_title, github_issue_title, workflow_id) as workflow_name,
        status,
        status_source,
        assignee_id,
        assignee_name,
        case
            when assignee_id is null then null
            when charlie_instance_id is not null then 'charlie'
            else 'human'
        end as assignee_type,
        charlie_instance_id,
        linear_priority_label as priority,
        linear_issue_key,
        linear_team_key,
        pr_repo as github_repo,
        pr_number as github_pr_number,
        pr_count,
        first_event_at,
        last_event_at,
        completed_at,
        cast(
            round(cast({{ dbt.datediff('first_event_at', 'completed_at', 'second') }} as {{ dbt.type_numeric() }}) / 3600, 2)
            as {{ dbt.type_numeric() }}
        ) as cycle_time_hours,
        event_count,
        actor_count,
        actors,
        sources,
        session_count,
        session_cost_usd,
        last_ci_conclusion,
        last_ci_completed_at,
        ci_run_count,
        ci_failed_run_count
    from workflows_with_completion

)

select * from final
