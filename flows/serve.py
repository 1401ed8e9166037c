"""`python -m flows.serve`: register the project's deployments on a Prefect server and run them.

Deployments (stable names, declared once in seedtrail/prefect/deployments.py, mirrored by
prefect.yaml): `train/seedtrail`, `sweep/seedtrail` and `verify/seedtrail`. The settings flags (the same as
`python -m flows.train`, plus `--config` and SEEDTRAIL_* variables) become the
default parameters of `train/seedtrail` (and the `base` of `sweep/seedtrail`); a custom
run overrides any of them:

    prefect deployment run train/seedtrail --param seed=5

Schedules need a real server (`prefect server start`), so without one this
refuses with exit status 2. Each flow run executes in its own process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from seedtrail.cli.main import run_cli
from seedtrail.core.errors import InputError
from seedtrail.prefect.deployments import (
    DEPLOYMENTS,
    NAME,
    deployment_tags,
    full_description,
    load_flow,
    schedule_slug,
)
from settings.cli import load_settings
from settings.model import RunSettings

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule

PROG = "python -m flows.serve"

# Default schedules (UTC unless --timezone), from the deployment declarations.
DEFAULT_CRON: dict[str, str | None] = {d.flow_name: d.cron for d in DEPLOYMENTS}
OFF = ("off", "none", "")

START_SERVER_HINT = (
    "start one with `prefect server start` and set "
    "PREFECT_API_URL=http://127.0.0.1:4200/api (or `prefect config set PREFECT_API_URL=...`)"
)


class _Parser(argparse.ArgumentParser):
    """argparse prints usage and exits 2 on its own; we want one line through run_cli."""

    def error(self, message: str) -> NoReturn:
        raise InputError(message)


@dataclass(frozen=True)
class ServeOptions:
    cron: dict[str, str | None]
    interval: dict[str, float | None]
    no_schedule: bool
    timezone: str
    limit: int


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        add_help=False,
        description="Register seedtrail's deployments on a Prefect server and serve them.",
        epilog="Any other flag is a setting, as in `python -m flows.train`: it becomes a default "
        "parameter of train/seedtrail (e.g. --training.epochs 5 --output-dir runs).",
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    for name in DEFAULT_CRON:
        default = DEFAULT_CRON[name] or "off"
        parser.add_argument(
            f"--{name}-cron",
            metavar="CRON",
            help=f"cron schedule of {name}/seedtrail, or 'off' (default: {default!r})",
        )
        parser.add_argument(
            f"--{name}-interval",
            metavar="SECONDS",
            type=float,
            help=f"run {name}/seedtrail every SECONDS instead of on a cron schedule",
        )
    parser.add_argument(
        "--no-schedule", action="store_true", help="register every deployment without a schedule"
    )
    parser.add_argument(
        "--timezone", default="UTC", help="IANA time zone of the cron schedules (default: UTC)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=1,
        help="flow runs at a time in this process (default: 1; each trains in its own process)",
    )
    return parser


def parse_args(argv: Sequence[str]) -> tuple[ServeOptions, list[str], bool]:
    """Serve flags, the settings flags left over, and whether help was asked for."""
    parser = build_parser()
    ns, rest = parser.parse_known_args(list(argv))
    if ns.help:
        print(parser.format_help())
        return ServeOptions({}, {}, True, "UTC", 1), rest, True
    cron: dict[str, str | None] = {}
    interval: dict[str, float | None] = {}
    for name, default in DEFAULT_CRON.items():
        c = getattr(ns, f"{name}_cron")
        i = getattr(ns, f"{name}_interval")
        if c is not None and i is not None:
            raise InputError(f"--{name}-cron and --{name}-interval: give one, not both")
        if i is not None and i <= 0:
            raise InputError(f"--{name}-interval: must be above 0 seconds (got {i:g})")
        if i is not None:
            cron[name] = None
        elif c is None:
            cron[name] = default
        else:
            cron[name] = None if c.strip().lower() in OFF else c
        interval[name] = i
    if ns.limit < 1:
        raise InputError(f"--limit: must be at least 1 (got {ns.limit})")
    return ServeOptions(cron, interval, ns.no_schedule, ns.timezone, ns.limit), rest, False


def schedules_for(name: str, opts: ServeOptions) -> list[Schedule]:
    """The schedules of one deployment; validated here so a typo is one line, not a traceback.

    Each is slugged with its time zone (`train-europe-berlin`): the UI shows a cron's time
    without its zone.
    """
    from datetime import timedelta

    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
    from prefect.schedules import Cron, Interval
    from pydantic import ValidationError

    if opts.no_schedule:
        return []
    slug = schedule_slug(name, opts.timezone)
    try:
        if opts.interval.get(name) is not None:
            seconds = opts.interval[name] or 0
            IntervalSchedule(interval=timedelta(seconds=seconds), timezone=opts.timezone)
            return [Interval(seconds, timezone=opts.timezone, slug=slug)]
        cron = opts.cron.get(name)
        if not cron:
            return []
        CronSchedule(cron=cron, timezone=opts.timezone)  # validates cron and zone
        return [Cron(cron, timezone=opts.timezone, slug=slug)]
    except ValidationError as err:
        e = err.errors()[0]
        field = "timezone" if e["loc"] and e["loc"][0] == "timezone" else f"{name}-cron"
        msg = e["msg"].removeprefix("Value error, ")
        raise InputError(f"--{field}: {msg}") from None


def require_server() -> str:
    """The configured Prefect API URL, or InputError if there is none or it does not answer."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise InputError(f"no Prefect server configured (schedules need one): {START_SERVER_HINT}")
    with get_client(sync_client=True) as client:
        err = client.api_healthcheck()
    if err is not None:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(
            f"cannot reach the Prefect server at {url} ({reason}): {START_SERVER_HINT}"
        )
    return url


def build_deployments(
    schedules: dict[str, list[Schedule]],
    settings: RunSettings,
    opts: ServeOptions,
) -> list[RunnerDeployment]:
    # Served runs execute in child processes of this one: pin where they write.
    settings = settings.model_copy(update={"output_dir": settings.output_dir.resolve()})
    return [
        load_flow(d.entrypoint).to_deployment(
            name=NAME,
            parameters=d.parameters(settings),
            schedules=schedules[d.flow_name],
            description=full_description(
                d,
                None if opts.no_schedule else opts.cron.get(d.flow_name),
                None if opts.no_schedule else opts.interval.get(d.flow_name),
                opts.timezone,
            ),
            tags=deployment_tags(opts.timezone if schedules[d.flow_name] else None),
            enforce_parameter_schema=True,  # the server rejects bad parameters, naming the field
        )
        for d in DEPLOYMENTS
    ]


def describe(deployments: Sequence[RunnerDeployment], url: str) -> str:
    lines = [f"serving on {url}:"]
    for d in deployments:
        scheds = [s.schedule for s in d.schedules or []]
        when = (
            ", ".join(
                f"cron {s.cron!r} {s.timezone}"
                if hasattr(s, "cron")
                else f"every {s.interval.total_seconds():g} s"
                for s in scheds
            )
            or "no schedule"
        )
        lines.append(f"  {d.flow_name}/{d.name}  ({when})")
    first = deployments[0]
    lines.append(
        f"custom run: prefect deployment run '{first.flow_name}/{first.name}' --param seed=5"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    opts, rest, want_help = parse_args(argv)
    if want_help:
        print("Default parameters of train/seedtrail (the settings of `python -m flows.train`):\n")
        load_settings(["--help"], prog=PROG)  # prints the settings flags and exits
        return 0
    settings = load_settings(rest, prog=PROG)
    schedules = {name: schedules_for(name, opts) for name in DEFAULT_CRON}
    url = require_server()
    deployments = build_deployments(schedules, settings, opts)

    from prefect import serve

    print(describe(deployments, url), flush=True)
    serve(*deployments, limit=opts.limit, print_starting_message=False)
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
