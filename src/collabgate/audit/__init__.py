"""The audit trail: append-only, hash-chained, never document content."""

from collabgate.audit.port import AuditEvent, AuditEventType, AuditRecord, AuditSink, AuditStore

__all__ = ["AuditEvent", "AuditEventType", "AuditRecord", "AuditSink", "AuditStore"]
