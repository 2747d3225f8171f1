"""The `tradepit` command: serve, run, admin, verify, status, simulate.

Admin commands print one JSON line each, so that scripts can read what they did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from tradepit import operations, status, venue
from tradepit.access import NotPrivateError
from tradepit.backup import BackupError, backup, restore
from tradepit.client import ReplyTimeoutError, VenueClient
from tradepit.cluster import ClusterError
from tradepit.cluster.command import cluster_command
from tradepit.doctor import examine, exited_message
from tradepit.domain.ids import IdError, uuid_to_id
from tradepit.domain.numbers import NumberError
from tradepit.domain.refusals import Refusal
from tradepit.domain.symbols import SymbolError
from tradepit.durability import DataLossError
from tradepit.embedded import DataDirInUseError, ValkeyExitedError
from tradepit.gateway import run_gateway
from tradepit.ledger import CASH
from tradepit.options import SettingsError, add_settings_options, settings_from
from tradepit.settings import (
    ClusterSettings,
    DemoSettings,
    GatewaySettings,
    StageSettings,
    StatusSettings,
    VenueSettings,
)
from tradepit.simulate import simulate
from tradepit.store.connection import open_client
from tradepit.store.errors import Loading, Refused, Unreachable
from tradepit.venue import GatewayPortError, MetricsPortError
from tradepit.verify import verify

try:
    import uvloop
except ImportError:  # not built for every platform; the stdlib loop works, a little slower
    uvloop = None  # type: ignore[assignment]

DATA_DIR = "./data"


def _event_loop_policy() -> None:
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _position(text: str) -> tuple[str, str]:
    symbol, sep, qty = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("a position is SYMBOL=QTY, such as ACME=100")
    return symbol, qty


# `demo` runs a new venue of one shard each, without fees, that accepts no loss of data.
_DEMO_FIXED = ("ledgers", "matchers", "maker_fee_bps", "taker_fee_bps", "no_gateway")


def _gateway_settings_json(text: str) -> GatewaySettings:
    try:
        return msgspec.json.decode(text, type=GatewaySettings)
    except (msgspec.DecodeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"not the gateway's settings: {error}") from None


def _where_arguments(parser: argparse.ArgumentParser, after_a_command: bool = False) -> None:
    """--data-dir, --redis-url and -v, given before the command or after it. After it, they
    default to nothing (SUPPRESS) so as not to overwrite what was given before it."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if after_a_command else value

    parser.add_argument(
        "--data-dir", default=default(DATA_DIR), help="where the embedded Valkey keeps data"
    )
    parser.add_argument(
        "--redis-url",
        default=default(None),
        help="use this Redis (default: $REDIS_URL, else embedded)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradepit", description="A self-hosted trading venue.")
    _where_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the whole venue in this process")
    add_settings_options(serve, VenueSettings)
    add_settings_options(serve, GatewaySettings)

    demo = commands.add_parser("demo", help="serve, plus a simulated market trading on it")
    # A demo venue is a new venue's shape, with its gateway in demo mode.
    add_settings_options(demo, VenueSettings, skip=_DEMO_FIXED)
    add_settings_options(demo, GatewaySettings, skip=("demo",))
    add_settings_options(demo, DemoSettings)

    run = commands.add_parser("run", help="run one shard of one stage in this process")
    stages = run.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name in ("ledger", "matcher", "marketdata"):
        add_settings_options(stages.add_parser(name, help=f"a {name} shard"), StageSettings)
    gateway = stages.add_parser("gateway", help="a gateway (the API), stateless")
    add_settings_options(gateway, GatewaySettings)
    gateway.add_argument(
        "--settings",
        type=_gateway_settings_json,
        default=None,
        help="all of the gateway's settings as one JSON object, in place of the options above "
        "(as `serve` starts its gateway)",
    )
    gateway.add_argument(
        "--fd",
        type=int,
        default=None,
        help="serve the listening socket inherited as this file descriptor (as `serve` does)",
    )
    gateway.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop once process PID has exited (`serve` starts its gateway so)",
    )

    commands.add_parser("verify", help="check the venue's books balance")
    add_settings_options(
        commands.add_parser("status", help="the venue's stages, gateways and Valkey, live"),
        StatusSettings,
    )

    adm = commands.add_parser("admin", help="operate a running venue")
    adm.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the venue's answer"
    )
    ops = adm.add_subparsers(dest="op", required=True)
    create = ops.add_parser("create-account")
    create.add_argument("--cash", default="0")
    create.add_argument("--position", type=_position, action="append", default=[])
    create.add_argument("--name", default="")
    for name in ("deposit", "withdraw"):
        move = ops.add_parser(name, help=f"{name} cash (--cash) or shares (--symbol, --qty)")
        move.add_argument("account")
        move.add_argument("--cash")
        move.add_argument("--symbol")
        move.add_argument("--qty")
        move.add_argument("--transfer-id", help="makes a retry safe: done once per id")
    ops.add_parser("list-accounts")
    symbol = ops.add_parser("add-symbol")
    symbol.add_argument("symbol")
    symbol.add_argument("--tick-size", default="0.01")
    symbol.add_argument("--lot-size", default="1")
    symbol.add_argument("--band-bps", type=int, default=1000)
    symbol.add_argument("--reference-price", help="where the price band starts before trading")
    symbol.add_argument(
        "--not-shortable",
        dest="shortable",
        action="store_false",
        help="margin accounts may not sell it short (not easy to borrow)",
    )
    margin = ops.add_parser("set-margin", help="make an account a cash (1) or margin (2, 4) one")
    margin.add_argument("account")
    margin.add_argument("--multiplier", type=int, choices=(1, 2, 4), required=True)
    for name in ("halt", "resume"):
        ops.add_parser(name).add_argument("symbol")
    ops.add_parser("close-session", help="expire every DAY order")

    commands.add_parser(
        "shim", help="print the directory to put on PYTHONPATH to redirect alpaca-py bots"
    )

    sim = commands.add_parser("simulate", help="trade random orders through the core, no Redis")
    sim.add_argument("--seconds", type=float, default=10.0)
    sim.add_argument("--traders", type=int, default=20)
    sim.add_argument("--seed", type=int, default=1)

    doctor = commands.add_parser("doctor", help="check the data directory, one finding a line")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="cut a damaged append-only file where the damage starts (losing what followed)",
    )
    backup = commands.add_parser("backup", help="copy the running venue into a new directory")
    backup.add_argument("directory", type=Path)
    backup.add_argument("--timeout", type=float, default=600.0, help="seconds for the snapshot")
    restore = commands.add_parser("restore", help="make --data-dir, a new one, from a backup")
    restore.add_argument("directory", type=Path, help="the backup")
    restore.add_argument("--timeout", type=float, default=600.0, help="seconds for the AOF")

    cluster = commands.add_parser(
        "cluster", help="a local Valkey Cluster, to try scale-out on one machine"
    )
    actions = cluster.add_subparsers(dest="cluster_action", required=True, metavar="ACTION")
    add_settings_options(
        actions.add_parser("up", help="start it (made at its first start); once it is ready"),
        ClusterSettings,
    )
    actions.add_parser("down", help="stop its nodes cleanly")
    actions.add_parser("status", help="its nodes, and whether it is ready (exit 1 if not)")

    for command in [
        *commands.choices.values(),
        *ops.choices.values(),
        *stages.choices.values(),
        *actions.choices.values(),
    ]:
        _where_arguments(command, after_a_command=True)
    return parser


async def _admin(args: argparse.Namespace, redis_url: str) -> Any:
    async with VenueClient(redis_url, reply_timeout=args.timeout) as client:
        op = args.op
        if op == "create-account":
            positions = dict(args.position)
            return await operations.create_account(client, args.cash, positions, args.name)
        if op in ("deposit", "withdraw"):
            if (args.cash is None) == (args.symbol is None):
                raise operations.AdminError(
                    Refusal.INVALID_REQUEST, "give either --cash or --symbol/--qty"
                )
            asset, amount = (CASH, args.cash) if args.cash is not None else (args.symbol, args.qty)
            if amount is None:
                raise operations.AdminError(Refusal.INVALID_REQUEST, "--symbol needs --qty")
            account_id = uuid_to_id(args.account)
            withdraw = op == "withdraw"
            return await operations.transfer(
                client, account_id, asset, amount, withdraw, args.transfer_id
            )
        if op == "list-accounts":
            return await operations.list_accounts(client)
        if op == "add-symbol":
            return await operations.add_symbol(
                client,
                args.symbol,
                args.tick_size,
                args.lot_size,
                args.band_bps,
                args.reference_price,
                args.shortable,
            )
        if op == "set-margin":
            return await operations.set_margin(client, uuid_to_id(args.account), args.multiplier)
        if op in ("halt", "resume"):
            return await operations.set_halted(client, args.symbol, op == "halt")
        return await operations.close_session(client)


async def _verify(redis_url: str) -> int:
    client = await open_client(redis_url)
    try:
        report = await verify(client)
    finally:
        await client.aclose()
    print(report.text())
    return 0 if report.ok else 1


def _run(main: Callable[[], Awaitable[Any]]) -> Any:
    _event_loop_policy()
    return asyncio.run(main())  # type: ignore[arg-type]


def _redis_problem(error: Unreachable | Refused) -> tuple[str, str]:
    """An error code and a readable message for what the server did."""
    if isinstance(error, Loading):  # an `Unreachable`, to redis-py
        return (
            "unreachable",
            "the server is loading its data (a large AOF takes seconds): try again soon",
        )
    if isinstance(error, Unreachable):
        return (
            "unreachable",
            f"cannot reach Redis ({error}): is the venue running? (`tradepit serve`)",
        )
    return "refused", f"Redis refused the command: {error}"  # a full disk (MISCONF), say


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # A stage says in one line each what it did at its start and at each recovery: an operator
    # wants those without --verbose (they come once, not per batch).
    logging.getLogger("tradepit.stage").setLevel(logging.INFO)
    try:
        return _command(args)
    except (
        DataDirInUseError,
        GatewayPortError,
        MetricsPortError,
        DataLossError,
        BackupError,
        SettingsError,
        ClusterError,
        NotPrivateError,
    ) as error:
        raise SystemExit(f"tradepit: {error}") from None
    except ValkeyExitedError as error:
        raise SystemExit(f"tradepit: {exited_message(args.data_dir, error)}") from None
    except (Unreachable, Refused) as error:
        code, message = _redis_problem(error)
        if args.command == "admin":  # which answers in JSON lines
            print(json.dumps({"error": code, "message": message}))
            return 1
        raise SystemExit(f"tradepit: {message}") from None


def _command(args: argparse.Namespace) -> int:
    if args.command == "shim":
        print(Path(__file__).parent / "shim")
        return 0
    if args.command == "simulate":
        return simulate(args.seconds, args.traders, args.seed)
    if args.command == "cluster":
        shape = settings_from(ClusterSettings, args)
        return cluster_command(args.cluster_action, Path(args.data_dir), shape)
    if args.command in ("serve", "demo"):
        demo = args.command == "demo"
        url = args.redis_url or os.environ.get("REDIS_URL") or None
        settings = settings_from(VenueSettings, args)
        gateway = settings_from(GatewaySettings, args)
        if not gateway.clock_anchor:  # one venue clock for serve and every gateway it starts
            gateway = msgspec.structs.replace(gateway, clock_anchor=time.time_ns())
        if demo:
            gateway = msgspec.structs.replace(gateway, demo=True)
        market = settings_from(DemoSettings, args) if demo else None
        _run(
            lambda: venue.serve(
                args.data_dir,
                settings,
                url,
                gateway=None if settings.no_gateway else gateway,
                demo=market,
                clock=gateway.venue_clock(),
                calendar=gateway.calendar,
            )
        )
        return 0
    if args.command == "doctor":
        findings = examine(Path(args.data_dir).resolve(), repair=args.repair)
        for finding in findings:
            print(finding.line())
        return 0 if all(finding.ok for finding in findings) else 1
    if args.command == "restore":
        target = Path(args.data_dir).resolve()
        print(json.dumps(_run(lambda: restore(args.directory, target, args.timeout))))
        return 0
    redis_url = venue.find_redis_url(args.data_dir, args.redis_url)
    if args.command == "backup":
        data_dir = Path(args.data_dir).resolve()
        taken = _run(lambda: backup(data_dir, redis_url, args.directory.resolve(), args.timeout))
        print(json.dumps(taken))
        return 0
    if args.command == "run" and args.stage == "gateway":
        gateway = args.settings or settings_from(GatewaySettings, args)
        fd, parent = args.fd, args.parent_pid
        _run(lambda: run_gateway(redis_url, gateway, fd=fd, parent_pid=parent))
        return 0
    if args.command == "run":
        stage = settings_from(StageSettings, args)
        index, count = stage.index_and_count()
        keep, acks = stage.keep_inputs, stage.replica_acks
        _run(
            lambda: venue.run_shard(
                args.stage,
                index,
                count,
                redis_url,
                keep_inputs=keep,
                replica_acks=None if acks < 0 else acks,
                metrics_port=stage.metrics_port,
            )
        )
        return 0
    if args.command == "verify":
        code: int = _run(lambda: _verify(redis_url))
        return code
    if args.command == "status":
        shown = settings_from(StatusSettings, args)
        try:
            code = _run(lambda: status.status(redis_url, shown))
        except KeyboardInterrupt:  # how a live view is left
            return 0
        return code
    try:
        result = _run(lambda: _admin(args, redis_url))
    except operations.AdminError as error:
        print(json.dumps({"error": error.code, "message": error.message}))
        return 1
    except (NumberError, SymbolError, IdError) as error:
        print(json.dumps({"error": "invalid_request", "message": str(error)}))
        return 1
    except operations.AccountPendingError as error:
        message = f"{error}: is the venue running? (`tradepit serve`)"
        print(json.dumps({"error": "no_reply", "message": message, **error.credentials}))
        return 1
    except ReplyTimeoutError as error:
        message = (
            f"{error}: is the venue running? (`tradepit serve`) The command stays queued, and "
            "its ledger applies it once it runs."
        )
        print(json.dumps({"error": "no_reply", "message": message}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
