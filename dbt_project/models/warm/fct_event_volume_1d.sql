{{ config(pre_hook="{{ warm_window_delete('bucket_start_at') }}") }}

{{ event_volume(ref('fct_events'), 'day', warm_window('event_at')) }}
