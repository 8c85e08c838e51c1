"""One blue/green deployment against the ECS services and the ALB listener terraform creates.

The idle colour (weight 0 on the HTTPS listener) gets a new task definition revision with the new
image and as many tasks as the live colour runs. Once its targets are healthy and the smoke test
passes against it (``X-Collabgate-Color``), traffic moves 100/0 → 50/50 → 0/100, one step per
``Timing.step_seconds``, the new colour's targets checked before each step. Any failure puts the
listener back to the live colour alone and scales the new one to zero: clients that had moved
reconnect (the gateway's drain) to the old version. The old colour stays up as a standby until
:meth:`BlueGreen.retire` scales it down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

COLOURS = ("blue", "green")
#: Fields of a described task definition that RegisterTaskDefinition takes back as they are.
_REGISTERED_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "runtimePlatform",
    "ephemeralStorage",
)


class DeployFailed(RuntimeError):
    """The deployment stopped and traffic is back on the colour that served before."""


class DeployCancelled(Exception):
    """Raised into a running deployment (the CI job was cancelled or timed out): it rolls back."""


@dataclass(frozen=True)
class Stack:
    """The names terraform outputs for the controller (terraform/README.md, Outputs)."""

    cluster: str
    services: Mapping[str, str]
    families: Mapping[str, str]
    target_groups: Mapping[str, str]
    listener: str
    container: str

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> Stack:
        """From ``terraform output -json`` of an environment."""

        def value(name: str) -> Any:
            if name not in outputs:
                raise KeyError(f"terraform output {name!r} is missing")
            return outputs[name]["value"]

        return cls(
            cluster=value("ecs_cluster_name"),
            services=value("ecs_service_names"),
            families=value("task_definition_families"),
            target_groups=value("target_group_arns"),
            listener=value("https_listener_arn"),
            container=value("container_name"),
        )


@dataclass(frozen=True)
class Timing:
    #: The new colour's weight after each step; the seed's 100/0 → 50/50 → 0/100.
    shift: tuple[int, ...] = (50, 100)
    step_seconds: float = 60.0
    #: With the 2-minute smoke test and the two steps, a deployment stays under the 10 minutes
    #: of the workflow's job, which must never cut one off before its rollback.
    healthy_timeout_seconds: float = 300.0
    poll_seconds: float = 5.0


def other(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


class BlueGreen:
    """The controller. ``ecs`` and ``elbv2`` are boto3 clients; ``smoke(colour)`` raises when the
    colour fails its smoke test; ``notify(text)`` tells the team (Slack)."""

    def __init__(
        self,
        stack: Stack,
        ecs: Any,
        elbv2: Any,
        *,
        smoke: Callable[[str], None],
        notify: Callable[[str], None],
        timing: Timing = Timing(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stack, self.ecs, self.elbv2 = stack, ecs, elbv2
        self.smoke, self.notify, self.timing = smoke, notify, timing
        self.sleep, self.clock = sleep, clock

    # --- what is live ------------------------------------------------------------------------
    def weights(self) -> dict[str, int]:
        listener = self.elbv2.describe_listeners(ListenerArns=[self.stack.listener])["Listeners"][0]
        groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        by_arn = {group["TargetGroupArn"]: int(group.get("Weight", 0)) for group in groups}
        return {colour: by_arn.get(arn, 0) for colour, arn in self.stack.target_groups.items()}

    def live(self) -> str:
        weights = self.weights()
        return max(COLOURS, key=lambda colour: weights[colour])

    # --- the deployment ----------------------------------------------------------------------
    def deploy(self, image: str) -> str:
        """Put ``image`` live on the idle colour; return that colour. DeployFailed on failure."""
        live = self.live()
        idle = other(live)
        self.notify(f"Deploying {image} to {idle} ({live} serves all traffic)")
        try:
            revision = self._register(idle, image)
            tasks = self._desired(live)
            self._update(idle, revision, tasks)
            self._wait_healthy(idle, tasks)
            self.smoke(idle)
            for weight in self.timing.shift:
                self.sleep(self.timing.step_seconds)
                self._require_healthy(idle, tasks)
                self._route(idle, weight)
        except Exception as exc:
            self.rollback(live, f"{type(exc).__name__}: {exc}")
            raise DeployFailed(f"deploying {image} to {idle} failed: {exc}") from exc
        self.notify(f"Deployed {image}: {idle} serves all traffic; {live} stays up as standby")
        return idle

    def rollback(self, to: str, reason: str) -> None:
        """All traffic to ``to``; the other colour scaled to zero."""
        self._route(to, 100)
        self.ecs.update_service(
            cluster=self.stack.cluster, service=self.stack.services[other(to)], desiredCount=0
        )
        self.notify(f"Rollback: all traffic back on {to}, {other(to)} stopped. Reason: {reason}")

    def retire(self, colour: str) -> None:
        """Scale a standby colour to zero; refused while it still takes traffic."""
        weight = self.weights()[colour]
        if weight:
            raise DeployFailed(f"{colour} still takes {weight} % of the traffic: not retired")
        self.ecs.update_service(
            cluster=self.stack.cluster, service=self.stack.services[colour], desiredCount=0
        )
        self.notify(f"Standby {colour} scaled to zero")

    # --- steps ---------------------------------------------------------------------------------
    def _register(self, colour: str, image: str) -> str:
        family = self.stack.families[colour]
        current = self.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        definition = {key: current[key] for key in _REGISTERED_FIELDS if key in current}
        containers = [dict(container) for container in definition["containerDefinitions"]]
        named = [c for c in containers if c["name"] == self.stack.container]
        if not named:
            raise DeployFailed(f"{family} has no container named {self.stack.container!r}")
        named[0]["image"] = image
        definition["containerDefinitions"] = containers
        registered = self.ecs.register_task_definition(**definition)
        return str(registered["taskDefinition"]["taskDefinitionArn"])

    def _desired(self, colour: str) -> int:
        service = self._describe(colour)
        return max(1, int(service["desiredCount"]))

    def _describe(self, colour: str) -> dict[str, Any]:
        described = self.ecs.describe_services(
            cluster=self.stack.cluster, services=[self.stack.services[colour]]
        )
        return dict(described["services"][0])

    def _update(self, colour: str, revision: str, tasks: int) -> None:
        self.ecs.update_service(
            cluster=self.stack.cluster,
            service=self.stack.services[colour],
            taskDefinition=revision,
            desiredCount=tasks,
        )

    def _healthy_targets(self, colour: str) -> tuple[int, list[str]]:
        described = self.elbv2.describe_target_health(
            TargetGroupArn=self.stack.target_groups[colour]
        )
        states = [t["TargetHealth"]["State"] for t in described["TargetHealthDescriptions"]]
        return states.count("healthy"), [s for s in states if s not in ("healthy", "draining")]

    def _wait_healthy(self, colour: str, tasks: int) -> None:
        deadline = self.clock() + self.timing.healthy_timeout_seconds
        while True:
            healthy, _ = self._healthy_targets(colour)
            if healthy >= tasks:
                return
            if self.clock() >= deadline:
                raise DeployFailed(
                    f"{colour}: {healthy} of {tasks} targets healthy after"
                    f" {self.timing.healthy_timeout_seconds:g} s"
                )
            self.sleep(self.timing.poll_seconds)

    def _require_healthy(self, colour: str, tasks: int) -> None:
        healthy, bad = self._healthy_targets(colour)
        if healthy < tasks or bad:
            raise DeployFailed(
                f"{colour}: {healthy} of {tasks} targets healthy ({bad or 'none'} not)"
            )

    def _route(self, colour: str, weight: int) -> None:
        weights = {colour: weight, other(colour): 100 - weight}
        groups = [
            {"TargetGroupArn": self.stack.target_groups[c], "Weight": weights[c]} for c in COLOURS
        ]
        self.elbv2.modify_listener(
            ListenerArn=self.stack.listener,
            DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
        )
