{#-
    One row: how many cron jobs there are and how many are healthy or failed. Its own model so that
    the streaming sidecar can run this very SQL live over a pushed cron run (streaming/state/), and
    `system_status_update` reads it for the build.
-#}
with

cron_jobs as (

    select * from {{ ref('fct_cron_job_health') }}

),

final as (

    select
        count(*) as cron_jobs_total,
        coalesce(sum(case when is_healthy then 1 else 0 end), 0) as cron_jobs_healthy,
        coalesce(sum(case when is_healthy then 0 else 1 end), 0) as cron_jobs_failed
    from cron_jobs

)

select * from final
