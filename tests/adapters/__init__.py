"""Adapters against the real libraries: Vertex AI, Cloud Monitoring and Cloud Logging
over their real transports to local fakes, Secret Manager, and the store (SQLite and
PostgreSQL: compare-and-set, the audit chain, migrations)."""
