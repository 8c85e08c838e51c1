"""The blue/green controller against moto's ECS and ELBv2 on loopback (AWS is unreachable here),
smoke-testing a real gateway process and notifying a real HTTP receiver standing in for Slack."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from tools.deploy.bluegreen import (
    COLOURS,
    BlueGreen,
    DeployCancelled,
    DeployFailed,
    Stack,
    Timing,
)
from tools.deploy.notify import notifier
from tools.deploy.smoke import SmokeTestFailed, smoke_test
from tools.monitoring.receiver import NotificationReceiver

from tests.support.gateway_process import GatewayProcess
from tests.support.moto_server import free_port, moto_endpoint

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        yield endpoint


def client(aws: str, service: str) -> Any:
    keys = {name.lower(): value for name, value in CREDENTIALS.items()}
    return boto3.client(service, endpoint_url=aws, region_name=REGION, **keys)


@pytest.fixture
def outputs(aws: str, tmp_path: Path) -> dict[str, Any]:
    """What terraform builds for the controller, as `terraform output -json` gives it: blue
    live with 3 tasks, green idle at 0, a weighted HTTPS listener at 100/0."""
    ec2, ecs, elbv2 = client(aws, "ec2"), client(aws, "ecs"), client(aws, "elbv2")
    name = f"cg{tmp_path.name[-8:].replace('_', '')}"
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    balancer = elbv2.create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]
    groups = {
        colour: elbv2.create_target_group(
            Name=f"{name}-{colour}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        for colour in COLOURS
    }
    forward = [{"TargetGroupArn": groups["blue"], "Weight": 100}]
    forward.append({"TargetGroupArn": groups["green"], "Weight": 0})
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Protocol="HTTP",
        Port=443,
        DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": forward}}],
    )["Listeners"][0]["ListenerArn"]
    ecs.create_cluster(clusterName=name)
    for colour, tasks in (("blue", 3), ("green", 0)):
        definition = ecs.register_task_definition(
            family=f"{name}-{colour}",
            containerDefinitions=[
                {"name": "gateway", "image": "collabgate:1.0.0", "memory": 2048},
                {"name": "adot", "image": "aws-otel-collector:v0.40", "memory": 256},
            ],
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="2048",
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=name,
            serviceName=f"{name}-gateway-{colour}",
            taskDefinition=definition,
            desiredCount=tasks,
            launchType="FARGATE",
        )
    return {
        "ecs_cluster_name": {"value": name},
        "ecs_service_names": {"value": {c: f"{name}-gateway-{c}" for c in COLOURS}},
        "task_definition_families": {"value": {c: f"{name}-{c}" for c in COLOURS}},
        "target_group_arns": {"value": groups},
        "https_listener_arn": {"value": listener},
        "container_name": {"value": "gateway"},
    }


def tasks_come_up(aws: str, stack: Stack, colour: str, count: int = 3) -> None:
    """What ECS does once the new tasks start: it registers them in the colour's target group."""
    targets = [{"Id": f"10.0.1.{10 + i}", "Port": 8080} for i in range(count)]
    client(aws, "elbv2").register_targets(
        TargetGroupArn=stack.target_groups[colour], Targets=targets
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("deploy-smoke")).start()
    yield process
    process.terminate()


@pytest.fixture
def slack() -> Iterator[NotificationReceiver]:
    receiver = NotificationReceiver().start()
    yield receiver
    receiver.stop()


def controller(
    aws: str, stack: Stack, smoke: Any, slack: NotificationReceiver, sleeps: list[float]
) -> BlueGreen:
    return BlueGreen(
        stack,
        client(aws, "ecs"),
        client(aws, "elbv2"),
        smoke=smoke,
        notify=notifier(f"{slack.url}/slack"),
        timing=Timing(healthy_timeout_seconds=30, poll_seconds=1),
        sleep=sleeps.append,  # the waits are recorded, not slept: moto answers at once
    )


def messages(slack: NotificationReceiver) -> list[str]:
    return [str(n.body["text"]) for n in slack.snapshot() if n.kind == "slack"]


def test_a_healthy_image_goes_live_on_the_idle_colour_in_two_steps(
    aws: str, outputs: dict[str, Any], gateway: GatewayProcess, slack: NotificationReceiver
) -> None:
    stack = Stack.from_outputs(outputs)
    tasks_come_up(aws, stack, "green")
    sleeps: list[float] = []
    smoked: list[str] = []

    def smoke(colour: str) -> None:
        smoked.append(colour)
        smoke_test(gateway.base_url, gateway.token("smoke-test", "viewer"), colour, timeout=30)

    bluegreen = controller(aws, stack, smoke, slack, sleeps)
    assert bluegreen.live() == "blue"
    assert bluegreen.deploy("collabgate:1.1.0") == "green"
    assert bluegreen.weights() == {"blue": 0, "green": 100}
    assert smoked == ["green"]
    assert sleeps == [60.0, 60.0]  # 50/50 after a minute, 0/100 after two
    ecs = client(aws, "ecs")
    green = ecs.describe_services(cluster=stack.cluster, services=[stack.services["green"]])
    service = green["services"][0]
    assert service["desiredCount"] == 3
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    images = {c["name"]: c["image"] for c in definition["taskDefinition"]["containerDefinitions"]}
    assert images == {"gateway": "collabgate:1.1.0", "adot": "aws-otel-collector:v0.40"}
    said = messages(slack)
    assert said[0].startswith("collabgate: Deploying collabgate:1.1.0 to green")
    assert "green serves all traffic; blue stays up as standby" in said[-1]

    bluegreen.retire("blue")
    blue = ecs.describe_services(cluster=stack.cluster, services=[stack.services["blue"]])
    assert blue["services"][0]["desiredCount"] == 0
    with pytest.raises(DeployFailed, match="green still takes 100 %"):
        bluegreen.retire("green")


def test_a_failed_smoke_test_rolls_back_and_says_why(
    aws: str, outputs: dict[str, Any], gateway: GatewayProcess, slack: NotificationReceiver
) -> None:
    stack = Stack.from_outputs(outputs)
    tasks_come_up(aws, stack, "green")

    def smoke(colour: str) -> None:  # a token the gateway refuses: /ws answers ERROR
        smoke_test(gateway.base_url, "not-a-jwt", colour, timeout=30)

    bluegreen = controller(aws, stack, smoke, slack, [])
    with pytest.raises(DeployFailed, match="WS_2002"):
        bluegreen.deploy("collabgate:broken")
    assert bluegreen.weights() == {"blue": 100, "green": 0}
    green = client(aws, "ecs").describe_services(
        cluster=stack.cluster, services=[stack.services["green"]]
    )
    assert green["services"][0]["desiredCount"] == 0
    assert any(
        m.startswith("collabgate: Rollback: all traffic back on blue") for m in messages(slack)
    )


def test_targets_that_never_turn_healthy_roll_back_before_any_traffic_moves(
    aws: str, outputs: dict[str, Any], slack: NotificationReceiver
) -> None:
    stack = Stack.from_outputs(outputs)  # no green targets ever register
    sleeps: list[float] = []
    bluegreen = controller(aws, stack, lambda colour: None, slack, sleeps)
    bluegreen.timing = Timing(healthy_timeout_seconds=0, poll_seconds=0)
    with pytest.raises(DeployFailed, match="0 of 3 targets healthy"):
        bluegreen.deploy("collabgate:1.2.0")
    assert sleeps == []  # no step was taken: each step starts with its minute's wait
    assert bluegreen.weights() == {"blue": 100, "green": 0}


def test_a_deployment_cancelled_halfway_puts_all_traffic_back(
    aws: str, outputs: dict[str, Any], slack: NotificationReceiver
) -> None:
    """The job is cancelled (or times out) while traffic is split 50/50: the signal becomes
    DeployCancelled inside the wait, and the rollback still runs."""
    stack = Stack.from_outputs(outputs)
    tasks_come_up(aws, stack, "green")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the minute at 50/50
            raise DeployCancelled("cancelled by SIGTERM")

    bluegreen = controller(aws, stack, lambda colour: None, slack, [])
    bluegreen.sleep = sleep
    with pytest.raises(DeployFailed, match="cancelled by SIGTERM"):
        bluegreen.deploy("collabgate:1.3.0")
    assert bluegreen.weights() == {"blue": 100, "green": 0}
    assert any("Rollback" in m and "DeployCancelled" in m for m in messages(slack))


def test_the_smoke_test_names_what_failed(gateway: GatewayProcess) -> None:
    smoke_test(gateway.base_url, gateway.token("smoke-test", "viewer"), "blue", timeout=30)
    with pytest.raises(SmokeTestFailed, match="GET /health failed"):
        smoke_test(f"http://127.0.0.1:{free_port()}", "t", "blue", timeout=5)


def test_the_command_line_reports_status_and_refuses_a_deploy_without_an_image(
    aws: str, outputs: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": aws, "AWS_DEFAULT_REGION": REGION}
    env.update(CREDENTIALS)

    def deploy_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.deploy", *args, "--outputs", str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    status = deploy_cli("status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {"weights": {"blue": 100, "green": 0}, "live": "blue"}
    refused = deploy_cli("deploy")
    assert refused.returncode == 2
    assert "deploy needs --image" in refused.stderr
    retired = deploy_cli("retire")  # no --colour: the one taking no traffic
    assert retired.returncode == 0, retired.stderr
    assert "Standby green scaled to zero" in retired.stdout
    live = deploy_cli("retire", "--colour", "blue")
    assert live.returncode == 1
    assert "blue still takes 100 %" in live.stderr
