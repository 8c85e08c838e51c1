"""The processor's building blocks against the gateway's own code: its tokens verify with the
gateway's verifier and key id, and its Y.js updates are real ones the server's CRDT applies."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pycrdt import Doc, Map

from collabgate.auth import Role, TokenVerifier, ensure_dev_keys
from collabgate.auth.verifier import VerificationKey
from tests.loadtools.conftest import run_node

MINT = """
const { TokenMinter } = require('./lib/token');
const minter = TokenMinter.fromEnvironment();
const token = minter.mint(process.argv[1], { role: process.argv[2], ttlSeconds: 600 });
console.log(JSON.stringify({ token, kid: minter.kid, algorithm: minter.algorithm }));
"""


async def test_tokens_verify_with_the_gateway_dev_key_and_kid(tmp_path: Path) -> None:
    keys = ensure_dev_keys(tmp_path / "dev-keys")
    minted = run_node(
        MINT, "load-user-1", "surgeon", env={"LOAD_JWT_KEY_FILE": str(keys.private_key_file)}
    )
    assert minted["algorithm"] == "ES256"
    assert minted["kid"] == keys.kid  # RFC 7638 thumbprint, computed the same way in JS
    header = json.loads(base64.urlsafe_b64decode(minted["token"].split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": keys.kid, "typ": "JWT"}
    verifier = TokenVerifier(
        static_keys=[VerificationKey("ES256", keys.public_key, keys.kid, "dev")]
    )
    principal = await verifier.verify(minted["token"])
    assert principal.user_id == "load-user-1"
    assert principal.role is Role.SURGEON


async def test_rsa_keys_issuer_audience_and_role_claim_path(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "idp.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    minted = run_node(
        MINT,
        "load-user-2",
        "nurse",
        env={
            "LOAD_JWT_KEY_FILE": str(pem),
            "LOAD_JWT_ISSUER": "https://idp.example.test/realms/ward",
            "LOAD_JWT_AUDIENCE": "collabgate",
            "LOAD_JWT_ROLE_CLAIM": "realm_access.roles",
        },
    )
    assert minted["algorithm"] == "RS256"
    verifier = TokenVerifier(
        static_keys=[VerificationKey("RS256", key.public_key(), None, "pem")],
        issuer="https://idp.example.test/realms/ward",
        audience="collabgate",
        role_claim="realm_access.roles",
    )
    principal = await verifier.verify(minted["token"])
    assert principal.role is Role.NURSE


def test_a_missing_key_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="LOAD_JWT_KEY_FILE"):
        run_node(MINT, "u", "nurse", env={"LOAD_JWT_KEY_FILE": str(tmp_path / "absent.pem")})


EDIT = """
const { ChartReplica } = require('./lib/chart');
const alice = new ChartReplica('alice');
const bob = new ChartReplica('bob');
const first = alice.edit();
const second = alice.edit();
const seen = [bob.applyRemote(first.update, 'alice'), bob.applyRemote(second.update, 'alice')];
console.log(JSON.stringify({ updates: [first.update, second.update], seen,
  sequences: [first.sequence, second.sequence] }));
"""


def test_edits_are_real_yjs_updates_the_server_crdt_applies() -> None:
    result = run_node(EDIT)
    assert result["sequences"] == [1, 2]
    assert result["seen"] == [1, 2]  # a peer replica reads which edit it received
    doc: Doc[Any] = Doc()
    for update in result["updates"]:
        raw = base64.b64decode(update)
        assert 80 < len(raw) < 400  # a vital-signs record, not a placeholder
        doc.apply_update(raw)
    observations = doc.get("observations", type=Map)
    record = observations["obs:alice"]
    assert record["seq"] == 2
    assert {"hr", "bp", "spo2", "temp", "note", "at"} <= set(record)


SIZE = """
const Y = require('yjs');
const { ChartReplica } = require('./lib/chart');
const alice = new ChartReplica('alice');
for (let i = 0; i < 2000; i++) alice.edit();
console.log(JSON.stringify({ bytes: Y.encodeStateAsUpdate(alice.doc).length }));
"""


def test_the_document_keeps_its_size_over_many_edits() -> None:
    # A soak must measure the gateway, not an ever-growing document: superseded records merge.
    assert run_node(SIZE)["bytes"] < 1000
