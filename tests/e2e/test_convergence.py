"""Property: concurrent edits from several clients converge on every client and on the server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from collabgate.client import CollabClient
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e

# One operation: (insert?, position as a fraction of the current length, text or delete length)
operation = st.tuples(st.booleans(), st.floats(0, 1), st.text("abcxyz \n", min_size=1, max_size=6))
client_script = st.lists(operation, min_size=1, max_size=12)
_resources = itertools.count()


@pytest.fixture(scope="module")
def roomy_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("converge")).start()
    yield process
    process.terminate()


def apply(doc: Doc[Any], op: tuple[bool, float, str]) -> None:
    insert, where, text = op
    content = doc.get("content", type=Text)
    position = int(where * len(content))
    if insert or len(content) == 0:
        content.insert(position, text)
    else:
        end = min(len(content), position + len(text))
        if end > position:
            del content[position:end]


async def run_scripts(
    gateway: GatewayProcess, scripts: list[list[tuple[bool, float, str]]]
) -> None:
    resource = f"patient:converge-{next(_resources)}"
    clients = [
        CollabClient(gateway.ws_url, gateway.token(f"c{i}"), reconnect=False)
        for i in range(len(scripts))
    ]
    try:
        for client in clients:
            await client.connect()
            await client.join(resource)

        async def play(client: CollabClient, script: list[tuple[bool, float, str]]) -> None:
            for op in script:
                await client.edit(resource, lambda doc, op=op: apply(doc, op))

        await asyncio.gather(*(play(c, s) for c, s in zip(clients, scripts, strict=True)))
        async with CollabClient(
            gateway.ws_url, gateway.token("observer"), reconnect=False
        ) as observer:
            await observer.join(resource)
            server_text = str(observer.text(resource))
            expected_revision = observer.revision(resource)
        for client in clients:
            if client.revision(resource) < expected_revision:
                await client.wait_for(
                    lambda e, c=client: c.revision(resource) >= expected_revision, timeout=10
                )
            assert str(client.text(resource)) == server_text
    finally:
        for client in clients:
            await client.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scripts=st.lists(client_script, min_size=2, max_size=4))
def test_concurrent_edits_converge(
    roomy_gateway: GatewayProcess, scripts: list[list[tuple[bool, float, str]]]
) -> None:
    asyncio.run(run_scripts(roomy_gateway, scripts))
