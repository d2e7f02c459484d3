"""Data access for the REST API, apart from HTTP: mart readers, the app store, the serving cache, the queries."""
