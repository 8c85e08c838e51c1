"""Revision scripts, oldest first (``v0001_*.py``, ``v0002_*.py`` ...)."""
