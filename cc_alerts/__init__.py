"""Alerts: rules that watch the platform, the store that keeps what they find, and the notifier
that tells people (cc_alerts/model.py, rules/, store.py, monitor.py, notify.py).

No Dagster and no sidecar imports here: the sidecar's monitor and Dagster's sensors both use it.
"""
