"""ingest: loading, chunking and the bulk ingestion pipeline."""
