"""Helpers for revision scripts (imported by them, never by the running gateway)."""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

#: ``config.attributes`` key (programmatic runs) and ``-x`` argument (alembic CLI) that allow a
#: downgrade to drop tables holding rows.
ALLOW_DATA_LOSS = "allow_data_loss"


class DataLossRefusedError(RuntimeError):
    """A downgrade would have dropped tables holding rows; nothing was changed."""


def data_loss_allowed() -> bool:
    if context.config.attributes.get(ALLOW_DATA_LOSS):
        return True
    return context.get_x_argument(as_dictionary=True).get(ALLOW_DATA_LOSS, "") in ("1", "yes")


def refuse_to_drop_rows(*tables: str) -> None:
    """Stop a downgrade that would destroy stored documents or audit events, unless allowed.

    Patient documents and the audit trail are records a hospital must keep; dropping them must be
    a deliberate act, not the side effect of a rollback.
    """
    if context.is_offline_mode() or data_loss_allowed():
        return
    bind = op.get_bind()
    for table in tables:
        if bind.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar():
            raise DataLossRefusedError(
                f"refusing to drop {table}: it holds rows. Export them first, then downgrade with"
                f" {ALLOW_DATA_LOSS} (migrate.downgrade(..., allow_data_loss=True) or"
                f" alembic -x {ALLOW_DATA_LOSS}=yes)"
            )
