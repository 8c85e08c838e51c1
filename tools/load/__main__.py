"""``make load``: run a load scenario, rebuild a report, or archive results to S3.

    python -m tools.load run SCENARIO [--scale S] [--users N] [--duration SECONDS]
                                      [--profile-seconds N] [--results DIR]
    python -m tools.load report RESULTS_FOLDER
    python -m tools.load upload RESULTS_FOLDER [--bucket B] [--prefix P]

``run`` starts a gateway (embedded adapters unless COLLABGATE_REDIS_URL, COLLABGATE_AMQP_URL,
COLLABGATE_DATABASE_URL are set; they pass through), runs Artillery, writes
var/load-results/<UTC time>-<scenario>/ and, with LOAD_RESULTS_BUCKET set, uploads it. It exits 1
when a target fails. LOAD_SCALE, LOAD_USERS, LOAD_DURATION, LOAD_VARIABLES (JSON),
LOAD_PROFILE_SECONDS and LOAD_SAMPLE_SECONDS set the corresponding options; LOAD_TARGET (with LOAD_JWT_KEY_FILE) runs
against a gateway that is already running. docs/load-testing.md has the details.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tools.load import SCENARIOS, report, runner, upload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a scenario and report it")
    run.add_argument("scenario", help=f"{', '.join(SCENARIOS)}, or a path to a scenario file")
    run.add_argument("--scale", type=float, help="users and durations times this (LOAD_SCALE)")
    run.add_argument("--users", type=int, help="concurrent users (LOAD_USERS)")
    run.add_argument("--duration", type=float, help="sustained part in seconds (LOAD_DURATION)")
    run.add_argument("--profile-seconds", type=float, help="py-spy the gateway this long")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a scenario variable after scaling, e.g. --set sessionSeconds=60 (LOAD_VARIABLES)",
    )
    run.add_argument("--sample-seconds", type=float, help="seconds between gateway samples")
    run.add_argument("--results", type=Path, help="parent folder of the results (LOAD_RESULTS_DIR)")
    run.add_argument("--quiet", action="store_true", help="do not echo Artillery's console")
    rebuild = commands.add_parser("report", help="rebuild report.html of a results folder")
    rebuild.add_argument("folder", type=Path)
    rebuild.add_argument(
        "--markdown", action="store_true", help="print the targets table as Markdown and exit 0"
    )
    archive = commands.add_parser("upload", help="upload a results folder to S3")
    archive.add_argument("folder", type=Path)
    archive.add_argument("--bucket", default=os.environ.get("LOAD_RESULTS_BUCKET"))
    archive.add_argument(
        "--prefix", default=os.environ.get("LOAD_RESULTS_PREFIX", upload.DEFAULT_PREFIX)
    )
    args = parser.parse_args(argv)

    if args.command == "report":
        result = runner.report_folder(args.folder)
        if args.markdown:
            print(report.markdown(result.evaluation))
            return 0
        print(f"report: {result.report} ({'PASS' if result.passed else 'FAIL'})")
        return 0 if result.passed else 1
    if args.command == "upload":
        if not args.bucket:
            parser.error("no bucket: pass --bucket or set LOAD_RESULTS_BUCKET")
        for key in upload.upload_folder(args.folder, args.bucket, args.prefix):
            print(f"s3://{args.bucket}/{key}")
        return 0

    options = runner.environment_options(os.environ)
    for name in ("scale", "users", "duration", "profile_seconds", "sample_seconds"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.results is not None:
        options["results_root"] = args.results
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        if not name or not value:
            parser.error(f"--set wants NAME=VALUE, got {assignment!r}")
        options.setdefault("variables", {})[name] = float(value) if _is_number(value) else value
    if args.quiet:
        options["echo"] = None
    try:
        result = runner.run(runner.RunOptions(scenario=args.scenario, **options))
    except (runner.ToolMissing, ValueError) as error:
        print(f"load: {error}", file=sys.stderr)
        return 2
    print(f"\nresults: {result.folder}\nreport:  {result.report}")
    for check in result.evaluation.checks:
        state = "info" if check.informational else ("PASS" if check.passed else "FAIL")
        print(f"  {state:4}  {check.name}: {check.measured} (target {check.target})")
    bucket = os.environ.get("LOAD_RESULTS_BUCKET")
    if bucket:
        prefix = os.environ.get("LOAD_RESULTS_PREFIX", upload.DEFAULT_PREFIX)
        keys = upload.upload_folder(result.folder, bucket, prefix)
        print(f"uploaded {len(keys)} files to s3://{bucket}/{prefix}/{result.folder.name}/")
    print("PASS" if result.passed else "FAIL")
    return 0 if result.passed else 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
