"""Lake tables: tables kept as data files and a commit log, where a delete is a new version and
the deleted rows stay in older files until a physical step removes them."""
