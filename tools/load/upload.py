"""Archive a results folder in S3 (``LOAD_RESULTS_BUCKET``), encrypted at rest.

Objects land under ``<prefix>/<folder name>/`` (prefix ``LOAD_RESULTS_PREFIX``, default
``load-results``), each with its content type so report.html opens in a browser from the console.
Encryption: SSE-KMS with ``LOAD_RESULTS_KMS_KEY_ID`` when set, SSE-S3 (AES-256) otherwise.
Credentials and region come from boto3's usual chain (environment, profile, instance role); the
endpoint from ``AWS_ENDPOINT_URL`` when set (an S3-compatible store, or moto in the tests).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

DEFAULT_PREFIX = "load-results"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".yml": "application/yaml",
    ".gz": "application/gzip",
}


def content_type(path: Path) -> str:
    return (
        CONTENT_TYPES.get(path.suffix)
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


def upload_folder(
    folder: Path,
    bucket: str,
    prefix: str = DEFAULT_PREFIX,
    client: Any = None,
    kms_key_id: str | None = None,
) -> list[str]:
    """Upload every file of ``folder``; return the keys written, in order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}")
    if client is None:
        import boto3  # type: ignore[import-untyped]

        client = boto3.client("s3")
    kms_key_id = kms_key_id or os.environ.get("LOAD_RESULTS_KMS_KEY_ID") or None
    encryption: dict[str, str] = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        if kms_key_id
        else {"ServerSideEncryption": "AES256"}
    )
    base = "/".join(part for part in (prefix.strip("/"), folder.name) if part)
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{base}/{path.relative_to(folder).as_posix()}"
        client.upload_file(
            str(path), bucket, key, ExtraArgs={"ContentType": content_type(path), **encryption}
        )
        keys.append(key)
    return keys
