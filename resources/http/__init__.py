"""HTTP machinery every source client shares: retry policy, circuit breaker, ETag cache, SSE."""
