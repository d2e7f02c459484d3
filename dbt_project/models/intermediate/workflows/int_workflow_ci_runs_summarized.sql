with

workflow_keys as (

    select * from {{ ref('int_correlation_keys_linked') }}

),

workflow_runs as (

    select * from {{ ref('stg_github__workflow_runs') }}

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

final as (

    select
        workflow_id,
        count(*) as ci_run_count,
        sum(case when conclusion = 'failure' then 1 else 0 end) as ci_failed_run_count,
        max(case when recency_rank = 1 then conclusion end) as last_ci_conclusion,
        max(completed_at) as last_ci_completed_at
    from ci_runs_ranked
    group by workflow_id

)

select * from final
