"""The catalog and index files: the only place SQLAlchemy appears."""
