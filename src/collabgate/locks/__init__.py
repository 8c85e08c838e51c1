"""Edit locks on resources and on targets inside them."""

from collabgate.locks.port import WHOLE_RESOURCE, Denied, Lock, LockStore, conflicts

__all__ = ["WHOLE_RESOURCE", "Denied", "Lock", "LockStore", "conflicts"]
