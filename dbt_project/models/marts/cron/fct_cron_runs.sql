with

cron_events as (

    select * from {{ ref('stg_cron__events') }}

),

starts as (

    select
        run_id,
        min(occurred_at) as started_at
    from cron_events
    where run_event = 'started'
    group by run_id

),

finishes_ranked as (

    -- One finishing event per run; should the runner ever log two, the later one counts.
    select
        *,
        row_number() over (
            partition by run_id
            order by seq desc
        ) as recency_rank
    from cron_events
    where run_event in ('succeeded', 'failed')

),

finishes as (

    select * from finishes_ranked
    where recency_rank = 1

),

runs as (

    select
        run_id,
        min(job_name) as job_name,
        min(host) as host,
        min(seq) as first_seq
    from cron_events
    group by run_id

),

final as (

    select
        runs.run_id,
        runs.job_name,
        runs.host,
        coalesce(finishes.run_event, 'running') as run_status,
        starts.started_at,
        finishes.occurred_at as finished_at,
        coalesce(starts.started_at, finishes.occurred_at) as run_at,
        finishes.duration_ms,
        finishes.exit_code,
        finishes.message,
        runs.first_seq
    from runs
    left join starts
        on runs.run_id = starts.run_id
    left join finishes
        on runs.run_id = finishes.run_id

)

select * from final
