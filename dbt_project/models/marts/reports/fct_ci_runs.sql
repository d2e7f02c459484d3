{#- One row per finished GitHub Actions run: the operations reports (cc_assets/reports/) count CI
    success per hour or day of any period from it. -#}
with

workflow_runs as (

    select * from {{ ref('stg_github__workflow_runs') }}
    where completed_at is not null

),

final as (

    select
        workflow_run_id,
        repo,
        workflow_name,
        run_attempt,
        conclusion,
        case
            when conclusion = 'success' then 'succeeded'
            when conclusion in ('failure', 'timed_out', 'startup_failure') then 'failed'
            else 'other'
        end as outcome,
        pr_correlation_key,
        run_started_at,
        completed_at
    from workflow_runs

)

select * from final
