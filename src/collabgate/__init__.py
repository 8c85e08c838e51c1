"""collabgate — real-time collaboration gateway for healthcare web applications."""

__version__ = "0.1.0"
