"""Batch scoring: a Snowflake table in, its predictions written to another table, all or nothing."""
