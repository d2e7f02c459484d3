{#
    A Linear state change seen live (the webhook's copy) and by the poll (the issue's history
    entry): one row per pair. The pairing rule is macros/linear_state_change_pairs.sql, which the
    tier moves apply to the lake too.
#}
{{ linear_state_change_pairs(ref('stg_normalized__events')) }}
