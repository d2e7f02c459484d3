with

business_rows as (

    select * from {{ ref('int_business_rows_rebuilt') }}
    where table_name = 'trades'

),

final as (

    -- Row images carry numerics as the exact text Postgres printed and timestamptz as ISO 8601.
    select
        cast({{ json_text('row_image', 'id') }} as {{ dbt.type_bigint() }}) as trade_id,
        {{ json_text('row_image', 'symbol') }} as symbol,
        {{ json_text('row_image', 'side') }} as side,
        cast({{ json_text('row_image', 'qty') }} as {{ dbt.type_numeric() }}) as quantity,
        cast({{ json_text('row_image', 'price') }} as {{ dbt.type_numeric() }}) as price,
        cast({{ json_text('row_image', 'pnl') }} as {{ dbt.type_numeric() }}) as pnl,
        {{ json_text('row_image', 'mode') }} as trade_mode,
        {{ utc_timestamp_from_iso(json_text('row_image', 'executed_at')) }} as executed_at,
        last_operation,
        last_committed_at
    from business_rows

)

select * from final
