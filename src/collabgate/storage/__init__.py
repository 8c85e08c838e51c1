"""Embedded storage shared by several adapters (documents and audit live in one SQLite file)."""
