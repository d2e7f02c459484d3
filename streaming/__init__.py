"""The streaming sidecar: webhooks in, room pushes out, and the REST API (`uvicorn streaming.app:app`)."""
