"""Reading: from a Snowflake table to this host's rows, spilled to local files."""
