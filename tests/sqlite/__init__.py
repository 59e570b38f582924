"""SQLite-specific tests of the embedded backend."""
