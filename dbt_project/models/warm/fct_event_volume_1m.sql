{{ config(pre_hook="{{ warm_window_delete('bucket_start_at') }}") }}

{{ event_volume(ref('fct_events'), 'minute', warm_window('event_at')) }}
