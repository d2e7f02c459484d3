with

cycles as (

    select * from {{ ref('stg_linear__cycles') }}

),

issues as (

    select * from {{ ref('stg_linear__issues') }}

),

as_of as (

    select {{ as_of_timestamp() }} as as_of_at

),

cycle_issue_totals as (

    select
        cycle_id,
        count(*) as issue_count,
        sum(case when state_type = 'completed' then 1 else 0 end) as completed_issue_count,
        sum(case when state_type = 'canceled' then 1 else 0 end) as canceled_issue_count,
        sum(case when state_type = 'started' then 1 else 0 end) as started_issue_count
    from issues
    where cycle_id is not null
    group by cycle_id

),

final as (

    select
        cycles.cycle_id,
        cycles.team_key,
        cycles.cycle_number,
        coalesce(cycles.cycle_name, cycles.team_key || ' cycle ' || cast(cycles.cycle_number as {{ dbt.type_string() }}))
            as cycle_name,
        cycles.starts_at,
        cycles.ends_at,
        cycles.completed_at,
        case
            when cycles.completed_at is not null then 'completed'
            when cycles.starts_at <= as_of.as_of_at and as_of.as_of_at < cycles.ends_at then 'active'
            when cycles.starts_at > as_of.as_of_at then 'upcoming'
            else 'past'
        end as cycle_status,
        coalesce(cycle_issue_totals.issue_count, 0) as issue_count,
        coalesce(cycle_issue_totals.completed_issue_count, 0) as completed_issue_count,
        coalesce(cycle_issue_totals.canceled_issue_count, 0) as canceled_issue_count,
        coalesce(cycle_issue_totals.started_issue_count, 0) as started_issue_count,
        case
            when coalesce(cycle_issue_totals.issue_count, 0) = 0 then null
            else cast(
                round(
                    cast(
                        cycle_issue_totals.completed_issue_count + cycle_issue_totals.canceled_issue_count
                        as {{ dbt.type_numeric() }}
                    ) / cycle_issue_totals.issue_count,
                    4
                ) as {{ dbt.type_numeric() }}
            )
        end as progress

    from cycles
    cross join as_of
    left join cycle_issue_totals
        on cycles.cycle_id = cycle_issue_totals.cycle_id

)

select * from final
