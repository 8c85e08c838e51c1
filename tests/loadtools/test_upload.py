"""Archiving a results folder in S3, against moto's S3 server on loopback (AWS is not reachable
from here, and a unit test should not need it anyway)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from tools.load import ROOT, upload

from tests.support.moto_server import moto_endpoint

BUCKET = "collabgate-load-results"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "20261125T120000Z-stress"
    folder.mkdir()
    (folder / "report.html").write_text("<!doctype html><title>r</title>")
    (folder / "artillery.json").write_text('{"aggregate": {}}')
    (folder / "artillery.log").write_text("log\n")
    return folder


def test_every_file_lands_under_the_prefix_with_type_and_encryption(s3: Any, results: Path) -> None:
    keys = upload.upload_folder(results, BUCKET, "releases/2.3.0", client=s3)
    assert keys == [
        "releases/2.3.0/20261125T120000Z-stress/artillery.json",
        "releases/2.3.0/20261125T120000Z-stress/artillery.log",
        "releases/2.3.0/20261125T120000Z-stress/report.html",
    ]
    head = s3.head_object(Bucket=BUCKET, Key=keys[2])
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["ServerSideEncryption"] == "AES256"
    body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    assert body == b'{"aggregate": {}}'


def test_kms_key_when_configured(s3: Any, results: Path) -> None:
    kms = boto3.client("kms", endpoint_url=s3.meta.endpoint_url, region_name="eu-west-1")
    key_id = kms.create_key(Description="load results")["KeyMetadata"]["KeyId"]
    keys = upload.upload_folder(results, BUCKET, client=s3, kms_key_id=key_id)
    assert keys[0].startswith("load-results/20261125T120000Z-stress/")
    head = s3.head_object(Bucket=BUCKET, Key=keys[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)


def test_the_command_line_uses_the_environment(s3: Any, s3_endpoint: str, results: Path) -> None:
    """What `make load-upload` (and `make load` with LOAD_RESULTS_BUCKET) runs."""
    env = {
        **os.environ,
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "LOAD_RESULTS_BUCKET": BUCKET,
        "LOAD_RESULTS_PREFIX": "ci",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tools.load", "upload", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="ci/")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "ci/20261125T120000Z-stress/artillery.json",
        "ci/20261125T120000Z-stress/artillery.log",
        "ci/20261125T120000Z-stress/report.html",
    ]
    assert f"s3://{BUCKET}/ci/20261125T120000Z-stress/report.html" in done.stdout


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        upload.upload_folder(tmp_path / "absent", BUCKET, client=object())
