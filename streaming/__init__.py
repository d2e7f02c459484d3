"""The streaming sidecar: webhooks in, room pushes out, and the REST API (`python -m streaming.serve`)."""
