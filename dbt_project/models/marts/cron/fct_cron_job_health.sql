with

runs as (

    select * from {{ ref('fct_cron_runs') }}

),

finished_runs_ranked as (

    select
        *,
        row_number() over (
            partition by job_name
            order by finished_at desc, first_seq desc
        ) as recency_rank
    from runs
    where run_status <> 'running'

),

last_finished_runs as (

    select * from finished_runs_ranked
    where recency_rank = 1

),

failed_runs_ranked as (

    select
        *,
        row_number() over (
            partition by job_name
            order by finished_at desc, first_seq desc
        ) as recency_rank
    from runs
    where run_status = 'failed'

),

last_failed_runs as (

    select * from failed_runs_ranked
    where recency_rank = 1

),

runs_ranked as (

    select
        *,
        row_number() over (
            partition by job_name
            order by run_at desc, first_seq desc
        ) as recency_rank
    from runs

),

last_runs as (

    select * from runs_ranked
    where recency_rank = 1

),

last_successes as (

    select
        job_name,
        max(finished_at) as last_success_at
    from runs
    where run_status = 'succeeded'
    group by job_name

),

job_totals as (

    select
        runs.job_name,
        count(*) as run_count,
        sum(case when runs.run_status = 'succeeded' then 1 else 0 end) as succeeded_count,
        sum(case when runs.run_status = 'failed' then 1 else 0 end) as failed_count,
        sum(case when runs.run_status = 'running' then 1 else 0 end) as running_count,
        -- Failures since the last success: how long the job has been failing in a row.
        sum(
            case
                when
                    runs.run_status = 'failed'
                    and (last_successes.last_success_at is null or runs.finished_at > last_successes.last_success_at)
                    then 1
                else 0
            end
        ) as consecutive_failures
    from runs
    left join last_successes
        on runs.job_name = last_successes.job_name
    group by runs.job_name

),

final as (

    select
        job_totals.job_name,
        last_runs.host,
        -- Healthy unless its last finished run failed (a job yet to finish a run has not failed).
        coalesce(last_finished_runs.run_status, 'succeeded') = 'succeeded' as is_healthy,
        job_totals.run_count,
        job_totals.succeeded_count,
        job_totals.failed_count,
        job_totals.running_count,
        job_totals.consecutive_failures,
        last_runs.run_at as last_run_at,
        last_runs.run_status as last_run_status,
        last_finished_runs.finished_at as last_finished_at,
        last_finished_runs.run_status as last_finished_status,
        last_finished_runs.exit_code as last_exit_code,
        last_finished_runs.duration_ms as last_duration_ms,
        last_failed_runs.finished_at as last_failure_at,
        last_failed_runs.exit_code as last_failure_exit_code,
        last_failed_runs.message as last_failure_message
    from job_totals
    left join last_runs
        on job_totals.job_name = last_runs.job_name
    left join last_finished_runs
        on job_totals.job_name = last_finished_runs.job_name
    left join last_failed_runs
        on job_totals.job_name = last_failed_runs.job_name

)

select * from final
