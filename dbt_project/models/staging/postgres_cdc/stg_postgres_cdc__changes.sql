with

source as (

    select * from {{ source('postgres_cdc', 'changes') }}

),

copies_ranked as (

    -- A change can be landed twice (a replay after a crash); its position identifies it.
    select
        *,
        {{ latest_copy_rank(['commit_lsn', 'seq']) }} as copy_rank
    from source

),

final as (

    select
        commit_lsn,
        seq,
        lsn,
        xid as transaction_id,
        schema_name,
        table_name,
        op as operation,
        before as before_image,
        after as after_image,
        reason as unparsed_reason,
        committed_at,
        _ingested_at as ingested_at

    from copies_ranked
    where copy_rank = 1

)

select * from final
