"""Tests of the numpy vector index beyond the shared contract suite."""
