with

source as (

    select * from {{ source('system', 'metrics') }}

),

copies_ranked as (

    select
        *,
        {{ latest_copy_rank('id') }} as copy_rank
    from source

),

final as (

    select
        id as metric_sample_id,
        host,
        cpu_percent,
        cpu_count,
        load_1m,
        load_5m,
        load_15m,
        memory_total_bytes,
        memory_used_bytes,
        memory_percent,
        disk_total_bytes,
        disk_used_bytes,
        disk_percent,
        net_bytes_sent,
        net_bytes_recv,
        process_count,
        sampled_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
