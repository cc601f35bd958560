"""Tools for testing simsi applications and alarm stores: see ``simsi.testing.conformance``."""
