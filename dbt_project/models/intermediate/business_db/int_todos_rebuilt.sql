with

business_rows as (

    select * from {{ ref('int_business_rows_rebuilt') }}
    where table_name = 'todos'

),

final as (

    select
        cast({{ json_text('row_image', 'id') }} as {{ dbt.type_bigint() }}) as todo_id,
        {{ json_text('row_image', 'title') }} as todo_title,
        {{ json_text('row_image', 'status') }} as todo_status,
        {{ json_text('row_image', 'assignee') }} as assignee,
        cast({{ json_text('row_image', 'priority') }} as {{ dbt.type_int() }}) as priority,
        cast({{ json_text('row_image', 'is_blocked') }} as {{ dbt.type_boolean() }}) as is_blocked,
        cast({{ json_text('row_image', 'due_on') }} as date) as due_on,
        {{ utc_timestamp_from_iso(json_text('row_image', 'created_at')) }} as created_at,
        {{ utc_timestamp_from_iso(json_text('row_image', 'updated_at')) }} as updated_at,
        last_operation,
        last_committed_at
    from business_rows

)

select * from final
