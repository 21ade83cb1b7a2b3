"""Query-path stages: identify the client, decide, answer from block/cache/upstream, record."""
