{#- Reads fct_workflow_events rather than staging so the million-row event dedupe runs once per build. -#}
{#- On Postgres the sidecar pages this table newest first (`/api/workflows`): a cursor's next page
    is an index range scan, read backwards, from the last row it showed. -#}
{% if target.type == 'postgres' %}
{{ config(indexes=[{'columns': ['last_event_at', 'workflow_id']}]) }}
{% endif %}
with

workflow_events as (

    select * from {{ ref('fct_workflow_events') }}
    where workflow_id is not null

),

workflow_keys as (

    select * from {{ ref('int_correlation_keys_linked') }}

),

linear_issues as (

    select * from {{ ref('stg_linear__issues') }}

),

pull_requests as (

    select * from {{ ref('stg_github__pull_requests') }}

),

github_issues as (

    select * from {{ ref('stg_github__issues') }}

),

charlie_instances as (

    select * from {{ ref('stg_charlie__instances') }}

),

session_costs as (

    select * from {{ ref('fct_workflow_session_costs') }}

),

workflow_runs as (

    select * from {{ ref('stg_github__workflow_runs') }}

),

event_totals as (

    select
        workflow_id,
        count(*) as event_count,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at
    from workflow_events
    group by workflow_id

),

workflow_actors as (

    select distinct
        workflow_id,
        actor_name
    from workflow_events
    where actor_name is not null

),

actor_totals as (

    select
        workflow_id,
        count(*) as actor_count,
        {{ sorted_string_agg('actor_name') }} as actors
    from workflow_actors
    group by workflow_id

),

workflow_sources as (

    select distinct
        workflow_id,
        source
    from workflow_events

),

source_totals as (

    select
        workflow_id,
        {{ sorted_string_agg('source') }} as sources
    from workflow_sources
    group by workflow_id

),

linear_issues_ranked as (

    -- Linear keys all have priority 1, so the first by md5 is the workflow's root whenever
    -- the root's issue has been ingested.
    select
        workflow_keys.workflow_id,
        linear_issues.*,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by {{ bytewise('md5(workflow_keys.correlation_key)') }}
        ) as linear_issue_rank
    from workflow_keys
    inner join linear_issues
        on workflow_keys.correlation_key = linear_issues.correlation_key

),

primary_linear_issues as (

    select * from linear_issues_ranked
    where linear_issue_rank = 1

),

pull_requests_ranked as (

    select
        workflow_keys.workflow_id,
        pull_requests.*,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by pull_requests.created_at desc, pull_requests.pull_request_id desc
        ) as recency_rank,
        count(*) over (partition by workflow_keys.workflow_id) as pr_count
    from workflow_keys
    inner join pull_requests
        on workflow_keys.correlation_key = pull_requests.correlation_key

),

latest_pull_requests as (

    select * from pull_requests_ranked
    where recency_rank = 1

),

github_issues_ranked as (

    select
        workflow_keys.workflow_id,
        github_issues.*,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by github_issues.created_at desc, github_issues.github_issue_id desc
        ) as recency_rank
    from workflow_keys
    inner join github_issues
        on workflow_keys.correlation_key = github_issues.correlation_key

),

latest_github_issues as (

    select * from github_issues_ranked
    where recency_rank = 1

),

ci_runs_ranked as (

    -- CI of every pull request in the workflow; the latest finished run says where CI stands.
    select
        workflow_keys.workflow_id,
        workflow_runs.conclusion,
        workflow_runs.completed_at,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by workflow_runs.completed_at desc, workflow_runs.workflow_run_id desc
        ) as recency_rank
    from workflow_keys
    inner join workflow_runs
        on workflow_keys.correlation_key = workflow_runs.pr_correlation_key
    where workflow_runs.completed_at is not null

),

ci_totals as (

    select
        workflow_id,
        count(*) as ci_run_count,
        sum(case when conclusion = 'failure' then 1 else 0 end) as ci_failed_run_count,
        max(case when recency_rank = 1 then conclusion end) as last_ci_conclusion,
        max(completed_at) as last_ci_completed_at
    from ci_runs_ranked
    group by workflow_id

),

charlie_task_outcomes_ranked as (

    select
        workflow_id,
        event_type,
        row_number() over (
            partition by workflow_id
            order by event_at desc, event_id desc
        ) as recency_rank
    from workflow_events
    where event_type in ('charlie.task.completed', 'charlie.task.failed')

),

charlie_totals as (

    select
        workflow_id,
        max(
            case when event_type = 'charlie.task.completed' then event_at end
        ) as last_task_completed_at
    from workflow_events
    where source = 'charlie'
    group by workflow_id

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
        event_totals.workflow_id,
        event_totals.event_count,
        event_totals.first_event_at,
        event_totals.last_event_at,
        actor_totals.actor_count,
        actor_totals.actors,
        source_totals.sources,

        primary_linear_issues.linear_issue_id,
        primary_linear_issues.issue_key as linear_issue_key,
        primary_linear_issues.team_key as linear_team_key,
        primary_linear_issues.issue_title as linear_title,
        primary_linear_issues.state_type as linear_state_type,
        primary_linear_issues.priority_label as linear_priority_label,
        primary_linear_issues.assignee_id,
        primary_linear_issues.assignee_name,
        primary_linear_issues.completed_at as linear_completed_at,

        latest_pull_requests.pull_request_id,
        latest_pull_requests.repo as pr_repo,
        latest_pull_requests.pr_number,
        latest_pull_requests.pr_title,
        latest_pull_requests.pr_state,
        latest_pull_requests.is_merged as is_pr_merged,
        latest_pull_requests.merged_at as pr_merged_at,
        coalesce(latest_pull_requests.pr_count, 0) as pr_count,

        latest_github_issues.github_issue_id,
        latest_github_issues.issue_title as github_issue_title,
        latest_github_issues.is_closed as is_github_issue_closed,
        latest_github_issues.closed_at as github_issue_closed_at,

        charlie_task_outcomes_ranked.event_type as last_charlie_outcome,
        charlie_totals.workflow_id is not null as has_charlie_events,
        charlie_totals.last_task_completed_at,

        charlie_linear_users.charlie_instance_id,

        coalesce(session_costs.session_count, 0) as session_count,
        coalesce(session_costs.cost_usd, 0) as session_cost_usd,

        ci_totals.last_ci_conclusion,
        ci_totals.last_ci_completed_at,
        coalesce(ci_totals.ci_run_count, 0) as ci_run_count,
        coalesce(ci_totals.ci_failed_run_count, 0) as ci_failed_run_count

    from event_totals
    left join actor_totals
        on event_totals.workflow_id = actor_totals.workflow_id
    left join source_totals
        on event_totals.workflow_id = source_totals.workflow_id
    left join primary_linear_issues
        on event_totals.workflow_id = primary_linear_issues.workflow_id
    left join latest_pull_requests
        on event_totals.workflow_id = latest_pull_requests.workflow_id
    left join latest_github_issues
        on event_totals.workflow_id = latest_github_issues.workflow_id
    left join charlie_task_outcomes_ranked
        on
            event_totals.workflow_id = charlie_task_outcomes_ranked.workflow_id
            and charlie_task_outcomes_ranked.recency_rank = 1
    left join charlie_totals
        on event_totals.workflow_id = charlie_totals.workflow_id
    left join charlie_linear_users
        on primary_linear_issues.assignee_id = charlie_linear_users.linear_user_id
    left join session_costs
        on event_totals.workflow_id = session_costs.workflow_id
    left join ci_totals
        on event_totals.workflow_id = ci_totals.workflow_id

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
            when linear_issue_id is not null then
                case linear_state_type
                    when 'started' then 'active'
                    when 'completed' then 'completed'
                    when 'canceled' then 'canceled'
                    else 'pending'
                end
            when pull_request_id is not null then
                case
                    when is_pr_merged then 'completed'
                    when pr_state = 'closed' then 'canceled'
                    else 'active'
                end
            when github_issue_id is not null then
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
