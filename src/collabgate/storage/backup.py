"""Backups of the embedded SQLite database: an online copy, verified, with a manifest; restore.

``create_backup`` runs beside a serving gateway: SQLite's online backup API copies a consistent
snapshot in one read transaction while the writer goes on committing. The copy is a backup only
once it has passed what a restore will check: SQLite's integrity check, and the audit trail's hash
chain from the genesis up to the head the copy holds. It is then made a single self-contained
file (rollback-journal mode, no ``-wal`` beside it), fsynced, and renamed into place; the manifest
beside it (``<backup>.manifest.json``) records its SHA-256, so a file damaged or truncated in
storage is caught before anything relies on it.

``restore_backup`` refuses a backup that does not verify and a database a gateway is serving (it
takes the gateway's lock, :mod:`collabgate.storage.lockfile`). It never deletes: the database it
replaces (and its ``-wal`` and ``-shm``) is renamed ``<name>.replaced-<UTC time>`` beside it.

The functions are synchronous (they copy and hash whole files) and run their own event loop to
check the audit chain: call them from a command or a worker thread. PostgreSQL is backed up by
its own tools (RDS automated backups and snapshots, ``pg_dump``): docs/runbooks/disaster-recovery.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from collabgate import __version__
from collabgate.audit.verify import verify_sqlite_file
from collabgate.ops.files import fsync_directory
from collabgate.storage.lockfile import DatabaseLock

MANIFEST_SUFFIX = ".manifest.json"
FORMAT = 1
_SIDECARS = ("-wal", "-shm")
_DOCUMENT_TABLES = ("document_snapshots", "document_updates", "document_updates_staged")


class BackupError(RuntimeError):
    """A backup that cannot be made, verified or restored; the message says which and why."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds, written beside it as JSON."""

    created_at: str
    source: str
    sha256: str
    bytes: int
    documents: int
    audit_records: int
    audit_head_seq: int
    audit_head_hash: str
    collabgate_version: str = __version__
    format: int = FORMAT

    @classmethod
    def read(cls, backup: Path) -> Manifest:
        path = manifest_path(backup)
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except FileNotFoundError:
            raise BackupError(
                f"{path} is missing: not a collabgate backup, or moved without it"
            ) from None
        except (ValueError, TypeError) as exc:
            raise BackupError(f"{path} is not a valid backup manifest: {exc}") from exc


@dataclass(frozen=True)
class Contents:
    """What a database file holds, as a backup records it."""

    documents: int
    audit_records: int
    audit_head: tuple[int, str]


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def create_backup(database: Path, destination: Path) -> Manifest:
    """Copy ``database`` to ``destination`` (which must not exist), verify it, write its manifest.

    Safe while a gateway serves the database. Raises :class:`BackupError` and leaves nothing at
    ``destination`` when the copy cannot be made or does not verify.
    """
    if not database.is_file():
        raise BackupError(f"no database at {database}")
    if destination.exists() or manifest_path(destination).exists():
        raise BackupError(f"{destination} already exists: a backup never overwrites one")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.with_name(destination.name + ".partial")
    try:
        _online_copy(database, staging)
        contents = _checked(staging)
        _make_self_contained(staging)
        digest, size = _sha256(staging)
        os.replace(staging, destination)
        fsync_directory(destination.parent)
    finally:
        _remove_with_sidecars(staging)
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=str(database),
        sha256=digest,
        bytes=size,
        documents=contents.documents,
        audit_records=contents.audit_records,
        audit_head_seq=contents.audit_head[0],
        audit_head_hash=contents.audit_head[1],
    )
    _write_durably(manifest_path(destination), json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def verify_backup(backup: Path) -> Manifest:
    """Check ``backup`` against its manifest and check what it holds, without changing it.

    Returns the manifest; raises :class:`BackupError` naming the first problem found.
    """
    manifest = Manifest.read(backup)
    _check_file(backup, manifest)
    with tempfile.TemporaryDirectory(prefix="collabgate-verify-") as scratch:
        copy = Path(scratch) / backup.name  # opening a database may change it: check a copy
        shutil.copyfile(backup, copy)
        _check_contents(_checked(copy), manifest, backup)
    return manifest


def restore_backup(backup: Path, database: Path) -> Path | None:
    """Make ``backup`` the database at ``database``, once it verifies; no gateway may serve it.

    Returns where the replaced database was moved (None when there was none). Raises
    :class:`BackupError` or :class:`~collabgate.storage.lockfile.DatabaseInUseError`, having
    changed nothing, when the backup does not verify or the database is in use.
    """
    manifest = Manifest.read(backup)
    _check_file(backup, manifest)
    with DatabaseLock(database):
        restoring = database.with_name(database.name + ".restoring")
        try:
            shutil.copyfile(backup, restoring)
            _check_file(restoring, manifest)
            _check_contents(_checked(restoring), manifest, backup)
            _make_self_contained(restoring)
            replaced = _move_aside(database)
            os.replace(restoring, database)
            fsync_directory(database.parent)
        finally:
            _remove_with_sidecars(restoring)
    return replaced


# --- the steps ---------------------------------------------------------------------------------


def _online_copy(database: Path, target: Path) -> None:
    """SQLite's backup API, all pages in one step: one read transaction, one consistent state."""
    source = sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {database}: {exc}") from exc
    finally:
        source.close()


def _checked(path: Path) -> Contents:
    """Integrity check and audit chain of a database file; BackupError on the first problem."""
    _integrity_check(path)
    report = asyncio.run(verify_sqlite_file(path))
    if not report.ok:
        raise BackupError(f"the audit trail in {path} does not verify: {report.problems[0]}")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        seq, digest = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        documents = connection.execute(
            "SELECT count(*) FROM ("
            + " UNION ".join(f"SELECT resource_id FROM {table}" for table in _DOCUMENT_TABLES)
            + ")"
        ).fetchone()[0]
    except (sqlite3.Error, TypeError) as exc:
        raise BackupError(f"{path} is not a collabgate database: {exc}") from exc
    finally:
        connection.close()
    return Contents(int(documents), report.records_checked, (int(seq), str(digest)))


def _integrity_check(path: Path) -> None:
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    if rows != ["ok"]:
        raise BackupError(f"{path} fails SQLite's integrity check: {'; '.join(rows[:3])}")


def _check_file(path: Path, manifest: Manifest) -> None:
    if manifest.format != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.format} is not {FORMAT}")
    if not path.is_file():
        raise BackupError(f"no backup at {path}")
    digest, size = _sha256(path)
    if (digest, size) != (manifest.sha256, manifest.bytes):
        raise BackupError(
            f"{path} is not the file its manifest describes ({size} bytes, sha256 {digest[:12]}…;"
            f" the manifest says {manifest.bytes} bytes, {manifest.sha256[:12]}…): damaged or replaced"
        )


def _check_contents(contents: Contents, manifest: Manifest, backup: Path) -> None:
    recorded = (manifest.audit_head_seq, manifest.audit_head_hash)
    if contents.audit_head != recorded:
        raise BackupError(
            f"{backup}: its audit head {contents.audit_head} is not the manifest's {recorded}"
        )


def _make_self_contained(path: Path) -> None:
    """Fold any WAL into the file and keep it in rollback-journal mode: one file, fsynced."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = DELETE").fetchone()
    finally:
        connection.close()
    with path.open("rb+") as file:
        os.fsync(file.fileno())


def _move_aside(database: Path) -> Path | None:
    if not database.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = database.with_name(f"{database.name}.replaced-{stamp}")
    for suffix in ("", *_SIDECARS):
        current = database.with_name(database.name + suffix)
        if current.exists():
            os.replace(current, moved.with_name(moved.name + suffix))
    return moved


def _remove_with_sidecars(path: Path) -> None:
    """A working copy that did not become the backup or the database: it and its -wal, -shm."""
    for suffix in ("", *_SIDECARS):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_durably(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    fsync_directory(path.parent)


# END
