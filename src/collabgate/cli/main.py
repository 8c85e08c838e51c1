"""`collabgate` — the operator's command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from collabgate.settings import Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except SettingsError as exc:
        print(f"collabgate: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collabgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the gateway (configured by COLLABGATE_* variables)"
    )
    serve.set_defaults(func=_serve)

    dev = commands.add_parser(
        "dev", help="run the gateway with a development key pair and print a token"
    )
    dev.add_argument("--sub", default="dev-user", help="user id of the printed token")
    dev.add_argument("--role", default="surgeon", help="role of the printed token")
    dev.set_defaults(func=_dev)

    token = commands.add_parser("token", help="mint a token signed with the development key")
    token.add_argument("--sub", required=True, help="user id (the `sub` claim)")
    token.add_argument(
        "--role", default="nurse", help="admin, surgeon, anesthesiologist, nurse, viewer, guest"
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--name", default=None, help="display name")
    token.set_defaults(func=_token)

    audit = commands.add_parser("audit", help="audit trail tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check the hash chain; exit 1 if it is broken"
    )
    verify.set_defaults(func=_audit_verify)
    retention = audit_commands.add_parser(
        "retention",
        help="drop the PostgreSQL audit partitions older than COLLABGATE_AUDIT_RETENTION_YEARS",
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="report what would be dropped, drop nothing"
    )
    retention.set_defaults(func=_audit_retention)

    backup = commands.add_parser(
        "backup", help="back up, verify or restore the embedded SQLite database (DATA_DIR)"
    )
    backup_commands = backup.add_subparsers(dest="backup_command", required=True)
    written = "a file written by `collabgate backup create`"
    for name, summary, path_help, func in (
        (
            "create",
            "copy the database (the gateway may be running), verify the copy",
            "the backup file to write; must not exist",
            _backup_create,
        ),
        (
            "verify",
            "check a backup against its manifest, its integrity and its audit chain",
            written,
            _backup_verify,
        ),
        (
            "restore",
            "replace the database with a verified backup (the gateway must be stopped)",
            written,
            _backup_restore,
        ),
    ):
        step = backup_commands.add_parser(name, help=summary)
        step.add_argument("path", type=Path, help=path_help)
        step.set_defaults(func=func)

    migrate = commands.add_parser(
        "migrate", help="bring the PostgreSQL schema (COLLABGATE_DATABASE_URL) up to date"
    )
    migrate.add_argument("--revision", default="head", help="schema revision (default: head)")
    migrate.set_defaults(func=_migrate)
    return parser


def _serve(_: argparse.Namespace) -> int:
    return _run_server(load_settings())


def _run_server(settings: Settings) -> int:
    from collabgate.http.app import create_app
    from collabgate.http.server import serve
    from collabgate.ops.logging import configure_logging

    configure_logging(settings.log_level)
    serve(create_app(settings), settings)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from collabgate.auth.devkeys import ensure_dev_keys, mint_token

    settings = load_settings(dev_keys=True)
    keys = ensure_dev_keys(settings.dev_keys_dir)
    token = mint_token(keys, sub=args.sub, role=args.role, ttl_seconds=8 * 3600, name=args.sub)
    url = f"ws://{settings.host}:{settings.port}/ws"
    print(
        f"""
collabgate is starting on http://{settings.host}:{settings.port} (embedded adapters, data in {settings.data_dir}/)

  development token ({args.role} {args.sub}, valid 8 h):
    {token}

  connect and join a resource:
    .venv/bin/python -m collabgate.client {url} --token {token} --resource patient:demo-1

  more tokens:  .venv/bin/collabgate token --sub alice --role nurse
  two browsers: http://{settings.host}:{settings.port}/demo?user=alice and ...?user=bob
  health:       curl http://{settings.host}:{settings.port}/ready
""",
        flush=True,
    )
    return _run_server(settings)


def _token(args: argparse.Namespace) -> int:
    from collabgate.auth.devkeys import ensure_dev_keys, mint_token

    settings = load_settings(dev_keys=True)
    keys = ensure_dev_keys(settings.dev_keys_dir)
    print(mint_token(keys, sub=args.sub, role=args.role, ttl_seconds=args.ttl, name=args.name))
    return 0


def _database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise SettingsError("COLLABGATE_DATABASE_URL is not set (this command needs PostgreSQL)")
    return settings.database_url.get_secret_value()


def _migrate(args: argparse.Namespace) -> int:
    from collabgate.storage.migrate import MigrationError, migrate

    url = _database_url(load_settings())
    try:
        applied = asyncio.run(migrate(url, revision=args.revision))
    except MigrationError as exc:
        print(f"collabgate: migration failed: {exc}", file=sys.stderr)
        return 1
    print("applied: " + (", ".join(applied) if applied else "nothing (already up to date)"))
    return 0


def _audit_verify(_: argparse.Namespace) -> int:
    from collabgate.audit.postgres import verify_postgres
    from collabgate.audit.verify import verify_database

    settings = load_settings()
    if settings.database_url is not None:
        report = asyncio.run(verify_postgres(settings.database_url.get_secret_value()))
    else:
        report = asyncio.run(verify_database(settings))
    for problem in report.problems:
        print(f"audit: {problem}", file=sys.stderr)
    status = "intact" if report.ok else "BROKEN"
    print(f"audit trail {status}: {report.records_checked} records checked")
    return 0 if report.ok else 1


def _embedded_database() -> Path:
    settings = load_settings()
    if settings.database_url is not None:
        raise SettingsError(
            "COLLABGATE_DATABASE_URL is set: PostgreSQL is backed up with its own tools"
            " (RDS backups and snapshots, pg_dump), see docs/runbooks/disaster-recovery.md"
        )
    return settings.database_file


def _backup_create(args: argparse.Namespace) -> int:
    from collabgate.storage.backup import BackupError, create_backup, manifest_path

    try:
        manifest = create_backup(_embedded_database(), args.path)
    except BackupError as exc:
        print(f"collabgate: backup failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"backup written: {args.path} ({manifest.bytes:,} bytes, sha256 {manifest.sha256})\n"
        f"  {manifest.documents} documents, audit trail verified up to record"
        f" {manifest.audit_head_seq}\n  manifest: {manifest_path(args.path)}"
    )
    return 0


def _backup_verify(args: argparse.Namespace) -> int:
    from collabgate.storage.backup import BackupError, verify_backup

    try:
        manifest = verify_backup(args.path)
    except BackupError as exc:
        print(f"collabgate: backup BROKEN: {exc}", file=sys.stderr)
        return 1
    print(
        f"backup intact: {args.path}, taken {manifest.created_at}, {manifest.documents}"
        f" documents, audit trail verified up to record {manifest.audit_head_seq}"
    )
    return 0


def _backup_restore(args: argparse.Namespace) -> int:
    from collabgate.storage.backup import BackupError, restore_backup
    from collabgate.storage.lockfile import DatabaseInUseError

    database = _embedded_database()
    try:
        replaced = restore_backup(args.path, database)
    except DatabaseInUseError as exc:
        print(f"collabgate: restore refused: {exc}; stop the gateway first", file=sys.stderr)
        return 1
    except BackupError as exc:
        print(f"collabgate: restore refused, nothing changed: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.path} to {database}")
    if replaced is not None:
        print(f"  the database it replaced was kept as {replaced}")
    print("  run `collabgate audit verify`, then start the gateway")
    return 0


def _audit_retention(args: argparse.Namespace) -> int:
    from collabgate.audit.postgres import AuditRetentionError, PostgresAuditStore, RetentionResult
    from collabgate.storage.postgres import PostgresDatabase

    settings = load_settings()
    url = _database_url(settings)

    async def run() -> RetentionResult:
        database = PostgresDatabase(url, min_size=1, max_size=2, health_check_interval=None)
        await database.open()
        try:
            store = PostgresAuditStore(database)
            return await store.drop_expired_partitions(
                settings.audit_retention_years, dry_run=args.dry_run
            )
        finally:
            await database.close()

    try:
        result = asyncio.run(run())
    except AuditRetentionError as exc:
        print(f"collabgate: audit retention refused: {exc}", file=sys.stderr)
        return 1
    verb = "would drop" if args.dry_run else "dropped"
    names = ", ".join(result.dropped) if result.dropped else "nothing"
    print(f"partitions ending on or before {result.cutoff:%Y-%m-%d}: {verb} {names}")
    if result.anchor is not None:
        print(f"verification starts after record {result.anchor[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
