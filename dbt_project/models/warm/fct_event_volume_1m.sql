{{ config(pre_hook="{{ warm_window_delete('bucket_start_at') }}") }}

{{ warm_event_volume('minute') }}
