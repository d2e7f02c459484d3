{#
    Host metrics rolled up per host and time bucket (`minute`, `hour`): one row per host per
    bucket. The 1 min and 1 h marts are this one query at two grains.
#}
{% macro system_metrics_rollup(grain) -%}
with

metric_samples as (

    select * from {{ ref('stg_system__metrics') }}

),

bucketed_samples as (

    select
        host,
        {{ dbt.date_trunc(grain, 'sampled_at') }} as bucket_start_at,
        cpu_percent,
        memory_percent,
        disk_percent,
        load_1m
    from metric_samples

),

bucket_totals as (

    select
        host,
        bucket_start_at,
        count(*) as sample_count,
        avg(cpu_percent) as avg_cpu_percent,
        max(cpu_percent) as max_cpu_percent,
        avg(memory_percent) as avg_memory_percent,
        max(memory_percent) as max_memory_percent,
        max(disk_percent) as max_disk_percent,
        avg(load_1m) as avg_load_1m,
        max(load_1m) as max_load_1m
    from bucketed_samples
    group by host, bucket_start_at

),

final as (

    select
        host,
        bucket_start_at,
        sample_count,
        round(cast(avg_cpu_percent as {{ dbt.type_numeric() }}), 2) as avg_cpu_percent,
        round(cast(max_cpu_percent as {{ dbt.type_numeric() }}), 2) as max_cpu_percent,
        round(cast(avg_memory_percent as {{ dbt.type_numeric() }}), 2) as avg_memory_percent,
        round(cast(max_memory_percent as {{ dbt.type_numeric() }}), 2) as max_memory_percent,
        round(cast(max_disk_percent as {{ dbt.type_numeric() }}), 2) as max_disk_percent,
        round(cast(avg_load_1m as {{ dbt.type_numeric() }}), 2) as avg_load_1m,
        round(cast(max_load_1m as {{ dbt.type_numeric() }}), 2) as max_load_1m
    from bucket_totals

)

select * from final
{%- endmacro %}
