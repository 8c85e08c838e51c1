"""Y.js documents: the server copy of each resource and its persistence."""

from collabgate.documents.port import DocumentStore, StoredDocument

__all__ = ["DocumentStore", "StoredDocument"]
