"""Tests of archive_db/: the catalogue on SQLite and PostgreSQL, search, the web API's input rules."""
