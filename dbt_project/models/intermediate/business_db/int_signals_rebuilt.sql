with

business_rows as (

    select * from {{ ref('int_business_rows_rebuilt') }}
    where table_name = 'signals'

),

final as (

    select
        cast({{ json_text('row_image', 'id') }} as {{ dbt.type_bigint() }}) as signal_id,
        {{ json_text('row_image', 'symbol') }} as symbol,
        {{ json_text('row_image', 'signal') }} as signal_direction,
        cast({{ json_text('row_image', 'strength') }} as {{ dbt.type_float() }}) as strength,
        {{ utc_timestamp_from_iso(json_text('row_image', 'created_at')) }} as created_at,
        last_operation,
        last_committed_at
    from business_rows

)

select * from final
