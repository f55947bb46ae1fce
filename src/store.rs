//! The SQLite schema and migrations.
