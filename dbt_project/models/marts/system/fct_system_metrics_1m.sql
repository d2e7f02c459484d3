{{ system_metrics_rollup('minute') }}
