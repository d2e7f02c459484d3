{#
    The business database's tables as they are now, rebuilt from their change log
    (stg_postgres_cdc__changes): per table and primary key, the row image of the latest change by
    (commit_lsn, seq). A row whose latest change deletes it is gone; so is every row whose latest
    change comes before a reset of its table:
      - a truncate of the table (rows changed after it, even in its own transaction, stay);
      - the latest snapshot: a replication slot that had to be recreated starts with a fresh
        snapshot of every table, and changes landed from the old slot are superseded by it.
    An update that changes the primary key deletes the old key and writes the new one.
    commit_lsn is zero-padded hex, so text order is LSN order (compared bytewise everywhere).
#}
{%- set primary_keys = {'todos': 'id', 'system_state': 'key', 'trades': 'id', 'signals': 'id'} -%}
{%- set business_tables = "'" ~ primary_keys.keys() | join("', '") ~ "'" -%}

with

changes as (

    select * from {{ ref('stg_postgres_cdc__changes') }}
    where
        table_name in ({{ business_tables }})
        and unparsed_reason is null

),

row_changes as (

    select
        schema_name,
        table_name,
        operation,
        commit_lsn,
        seq,
        committed_at,
        after_image,
        case table_name
            {%- for table_name, key_column in primary_keys.items() %}
                when '{{ table_name }}' then {{ json_text('after_image', key_column) }}
            {%- endfor %}
        end as after_key,
        case table_name
            {%- for table_name, key_column in primary_keys.items() %}
                when '{{ table_name }}' then {{ json_text('before_image', key_column) }}
            {%- endfor %}
        end as before_key
    from changes
    where operation in ('snapshot', 'insert', 'update', 'delete')

),

row_versions as (

    -- The row a change writes: its new image under its (new) key.
    select
        schema_name,
        table_name,
        after_key as row_key,
        after_image as row_image,
        operation,
        false as is_deleted,
        commit_lsn,
        seq,
        committed_at
    from row_changes
    where operation in ('snapshot', 'insert', 'update')

    union all

    -- The row a change removes: a deleted row, or the old key of an update that changed it.
    select
        schema_name,
        table_name,
        before_key as row_key,
        cast(null as {{ dbt.type_string() }}) as row_image,
        'delete' as operation,
        true as is_deleted,
        commit_lsn,
        seq,
        committed_at
    from row_changes
    where
        operation = 'delete'
        or (operation = 'update' and before_key <> after_key)

),

row_versions_ranked as (

    select
        *,
        row_number() over (
            partition by schema_name, table_name, row_key
            order by {{ bytewise('commit_lsn') }} desc, seq desc
        ) as recency_rank
    from row_versions
    where row_key is not null

),

truncates_ranked as (

    select
        schema_name,
        table_name,
        commit_lsn,
        seq,
        row_number() over (
            partition by schema_name, table_name
            order by {{ bytewise('commit_lsn') }} desc, seq desc
        ) as recency_rank
    from changes
    where operation = 'truncate'

),

latest_truncates as (

    select * from truncates_ranked
    where recency_rank = 1

),

latest_snapshot as (

    select max({{ bytewise('commit_lsn') }}) as snapshot_lsn
    from changes
    where operation = 'snapshot'

),

final as (

    select
        latest_versions.schema_name,
        latest_versions.table_name,
        latest_versions.row_key,
        latest_versions.row_image,
        latest_versions.operation as last_operation,
        latest_versions.commit_lsn as last_commit_lsn,
        latest_versions.seq as last_seq,
        latest_versions.committed_at as last_committed_at
    from row_versions_ranked as latest_versions
    cross join latest_snapshot
    left join latest_truncates
        on
            latest_versions.schema_name = latest_truncates.schema_name
            and latest_versions.table_name = latest_truncates.table_name
    where
        latest_versions.recency_rank = 1
        and not latest_versions.is_deleted
        and (
            latest_snapshot.snapshot_lsn is null
            or {{ bytewise('latest_versions.commit_lsn') }} >= latest_snapshot.snapshot_lsn
        )
        and (
            latest_truncates.commit_lsn is null
            or {{ bytewise('latest_versions.commit_lsn') }} > {{ bytewise('latest_truncates.commit_lsn') }}
            or (
                latest_versions.commit_lsn = latest_truncates.commit_lsn
                and latest_versions.seq > latest_truncates.seq
            )
        )

)

select * from final
