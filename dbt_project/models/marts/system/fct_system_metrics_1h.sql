{{ system_metrics_rollup('hour') }}
