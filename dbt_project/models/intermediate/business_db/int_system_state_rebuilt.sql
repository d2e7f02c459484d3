with

business_rows as (

    select * from {{ ref('int_business_rows_rebuilt') }}
    where table_name = 'system_state'

),

final as (

    -- `value` is jsonb in the source; the row image carries it as JSON text, kept as such.
    select
        {{ json_text('row_image', 'key') }} as state_key,
        {{ json_text('row_image', 'value') }} as state_value,
        {{ utc_timestamp_from_iso(json_text('row_image', 'updated_at')) }} as updated_at,
        last_operation,
        last_committed_at
    from business_rows

)

select * from final
