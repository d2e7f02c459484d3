with

workflow_keys as (

    select * from {{ ref('int_correlation_keys_linked') }}

),

pull_requests as (

    select * from {{ ref('stg_github__pull_requests') }}

),

pull_requests_ranked as (

    select
        workflow_keys.workflow_id,
        pull_requests.pull_request_id,
        pull_requests.repo,
        pull_requests.pr_number,
        pull_requests.pr_title,
        pull_requests.pr_state,
        pull_requests.is_merged,
        pull_requests.merged_at,
        row_number() over (
            partition by workflow_keys.workflow_id
            order by pull_requests.created_at desc, pull_requests.pull_request_id desc
        ) as recency_rank,
        count(*) over (partition by workflow_keys.workflow_id) as pr_count
    from workflow_keys
    inner join pull_requests
        on workflow_keys.correlation_key = pull_requests.correlation_key

),

final as (

    select
        workflow_id,
        pull_request_id,
        repo,
        pr_number,
        pr_title,
        pr_state,
        is_merged,
        merged_at,
        pr_count
    from pull_requests_ranked
    where recency_rank = 1

)

select * from final
