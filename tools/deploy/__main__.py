"""``python -m tools.deploy``: the blue/green controller's command line (deploy workflow).

    python -m tools.deploy status  --outputs outputs.json
    python -m tools.deploy deploy  --outputs outputs.json --image URI --base-url https://host
    python -m tools.deploy rollback --outputs outputs.json --to blue
    python -m tools.deploy retire  --outputs outputs.json            # the colour taking no traffic

``--outputs`` is ``terraform output -json`` of the environment. AWS credentials and region come
from boto3's usual chain (``AWS_ENDPOINT_URL`` points it elsewhere). The smoke test's JWT is read
from the variable ``--token-env`` names, the Slack webhook from ``--slack-env``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import boto3  # type: ignore[import-untyped]
from tools.deploy.bluegreen import (
    COLOURS,
    BlueGreen,
    DeployCancelled,
    DeployFailed,
    Stack,
    Timing,
    other,
)
from tools.deploy.notify import notifier
from tools.deploy.smoke import smoke_test


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for command, needed in (("deploy", "image"), ("rollback", "to")):
        if args.command == command and getattr(args, needed) is None:
            parser.error(f"{command} needs --{needed}")
    stack = Stack.from_outputs(json.loads(Path(args.outputs).read_text()))
    notify = notifier(os.environ.get(args.slack_env))
    token = os.environ.get(args.token_env, "")

    def smoke(colour: str) -> None:
        if not args.base_url or not token:
            raise DeployFailed(f"the smoke test needs --base-url and ${args.token_env}")
        smoke_test(args.base_url, token, colour, timeout=args.smoke_seconds)

    controller = BlueGreen(
        stack,
        boto3.client("ecs"),
        boto3.client("elbv2"),
        smoke=smoke,
        notify=notify,
        timing=Timing(step_seconds=args.step_seconds),
    )
    for cancel in (signal.SIGINT, signal.SIGTERM):  # a cancelled job: roll back, then exit
        signal.signal(cancel, _cancelled)
    try:
        if args.command == "status":
            print(json.dumps({"weights": controller.weights(), "live": controller.live()}))
        elif args.command == "deploy":
            controller.deploy(args.image)
        elif args.command == "rollback":
            controller.rollback(args.to, "rolled back by hand")
        else:
            controller.retire(args.colour or other(controller.live()))
    except DeployFailed as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    return 0


def _cancelled(signum: int, _: object) -> None:
    raise DeployCancelled(f"cancelled by {signal.Signals(signum).name}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__)
    parser.add_argument("command", choices=("status", "deploy", "rollback", "retire"))
    parser.add_argument("--outputs", required=True, help="terraform output -json, as a file")
    parser.add_argument("--image", help="the image to deploy (deploy)")
    parser.add_argument("--base-url", help="https://host the smoke test reaches (deploy)")
    parser.add_argument("--to", choices=COLOURS, help="the colour to send all traffic to")
    parser.add_argument(
        "--colour", choices=COLOURS, help="the standby to scale down (default: the idle colour)"
    )
    parser.add_argument("--step-seconds", type=float, default=60.0, help="between weight steps")
    parser.add_argument("--smoke-seconds", type=float, default=120.0, help="smoke test budget")
    parser.add_argument("--token-env", default="SMOKE_TEST_TOKEN")
    parser.add_argument("--slack-env", default="SLACK_DEPLOY_WEBHOOK_URL")
    return parser


if __name__ == "__main__":
    sys.exit(main())
