"""`gateway` command line: run the server, migrate the database, inspect and bind devices."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gateway import logs
from gateway.config import ConfigError, Settings, load_settings


def _run_loop(main: Awaitable[Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional (not on every platform)
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


async def _with_db(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from gateway.store.database import Database

    db = await Database.connect(settings.database.url)
    try:
        return await action(db)
    finally:
        await db.dispose()


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    from gateway.server import run

    # The gateway warns at start about the outbox channel and the contact_only proof.
    try:
        _run_loop(run(settings))
    except OSError as exc:
        print(f"gateway: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from gateway.store.migrate import upgrade

    _run_loop(upgrade(settings.database.url))
    print("database is at the latest schema")
    if settings.database.url.startswith("postgresql") and not settings.activation.server_key:
        print(_run_loop(_shared_server_key(settings)))
    return 0


async def _shared_server_key(settings: Settings) -> str:
    """Create the server key every instance reads from the database, once; an existing key
    file (a deployment that started on one machine) seeds it, so sealed secrets still open."""
    from pathlib import Path

    from gateway.store import secrets
    from gateway.store.database import Database

    key_file = Path(settings.activation.server_key_file)
    seed = key_file.read_text().strip() if key_file.is_file() else None
    db = Database.create(settings.database.url)
    try:
        _value, created = await secrets.server_key(db, seed if seed and len(seed) >= 32 else None)
    finally:
        await db.dispose()
    if not created:
        return "server key: already in the database (every instance reads it there)"
    origin = f"from {key_file}" if seed else "new"
    return f"server key: created in the database ({origin}); every instance reads it there"


def cmd_devices(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store import queries

    async def action(db: Any) -> Any:
        total = await queries.count_devices(db, state=args.state)
        limit = total if args.all else args.limit
        devices = await queries.list_devices(db, state=args.state, limit=limit,
                                             offset=args.offset) if limit else []
        return total, devices

    total, devices = _run_loop(_with_db(settings, action))
    for device in devices:
        print(json.dumps(_plain(device), default=str))
    if len(devices) < total:
        # On stderr: stdout stays one JSON document per line.
        first, last = args.offset + 1, args.offset + len(devices)
        rows = f" (rows {first}-{last})" if devices else ""
        after = args.offset + len(devices)
        more = (f"; next: --offset {after}" if after < total else "") + "; all: --all"
        print(f"showing {len(devices)} of {total} devices{rows}{more}", file=sys.stderr)
    return 0


def cmd_bind(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store import queries

    async def action(db: Any) -> Any:
        return await queries.bind_device(db, args.imei, args.contact)

    try:
        binding = _run_loop(_with_db(settings, action))
    except queries.DeviceNotFound:
        print(f"error: no device {args.imei} has been seen", file=sys.stderr)
        return 1
    except queries.DeviceAlreadyBound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(_plain(binding), default=str))
    return 0


def cmd_release(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store import queries

    async def action(db: Any) -> Any:
        return await queries.release_device(db, args.imei)

    try:
        closed = _run_loop(_with_db(settings, action))
    except queries.DeviceNotFound:
        print(f"error: no device {args.imei} has been seen", file=sys.stderr)
        return 1
    print(f"released {args.imei}" if closed is not None else f"{args.imei} was not bound")
    return 0


def _admin_service(settings: Settings, db: Any) -> Any:
    """The activation engine for admin commands: the gateway's own server key (claim keys are
    stored as its HMAC), nothing sent."""
    from gateway.activation import ActivationService
    from gateway.activation.codes import load_server_key
    from gateway.notify import build_notifier

    key = load_server_key(settings.activation.server_key, settings.activation.server_key_file)
    return ActivationService(db, settings.activation, settings.notify,
                             build_notifier(settings.notify), server_key=key)


def cmd_provision(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.activation import InvalidInput
    from gateway.activation.claim_keys import format_claim_key
    from gateway.activation.provisioning import GENERATE

    contact = args.contact_option or args.contact
    claim_key = GENERATE if args.generate_claim_key else args.claim_key

    async def action(db: Any) -> Any:
        return await _admin_service(settings, db).provisioning.provision(
            args.imei, contact, claim_key, by="cli", wire_id=args.wire_id)

    try:
        done = _run_loop(_with_db(settings, action))
    except InvalidInput as exc:
        print(f"error: {exc.field}: {exc.message}", file=sys.stderr)
        return 1
    out: dict[str, Any] = {"imei": done.imei, "contact_of_record": done.contact,
                           "claim_key_set": done.claim_key_set}
    if done.generated_claim_key is not None:
        # Shown this once: only its HMAC is stored.
        out["claim_key"] = format_claim_key(done.generated_claim_key)
    print(json.dumps(out))
    return 0


def _read_csv(path: str, encoding: str) -> str | None:
    """The text of a CSV file, its encoding detected (a note on stderr when it was guessed);
    None, with the reason on stderr, when it cannot be read as text."""
    from gateway.activation.csv_text import NotText, decode_csv

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return None
    try:
        decoded = decode_csv(data, encoding)
    except NotText as exc:
        print(f"error: {path}:{exc.line}: {exc.message}", file=sys.stderr)
        return None
    if decoded.note:
        print(f"note: {path}: {decoded.note}", file=sys.stderr)
    return decoded.text


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    content = _read_csv(args.file, args.encoding)
    if content is None:
        return 1

    async def action(db: Any) -> Any:
        return await _admin_service(settings, db).provisioning.import_csv(content, by="cli")

    result = _run_loop(_with_db(settings, action))
    for error in result.errors:
        print(f"{args.file}:{error.line}: {error.detail}", file=sys.stderr)
    print(json.dumps({"provisioned": result.provisioned, "errors": len(result.errors)}))
    return 1 if result.errors else 0


def cmd_unlock(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.activation import InvalidInput

    async def action(db: Any) -> Any:
        return await _admin_service(settings, db).provisioning.unlock(args.imei, by="cli")

    try:
        was_locked = _run_loop(_with_db(settings, action))
    except InvalidInput as exc:
        print(f"error: {exc.field}: {exc.message}", file=sys.stderr)
        return 1
    print(f"unlocked {args.imei}" if was_locked else f"{args.imei} was not locked")
    return 0


def cmd_command(settings: Settings, args: argparse.Namespace) -> int:
    """Queue a command (the running gateways send it within `commands.poll_s`); with --wait,
    print each status it reaches until it is settled or the time is up."""
    from gateway.outbound.commands import CommandRefused, CommandService
    from gateway.store import commands as command_store

    async def action(db: Any) -> int:
        service = CommandService(db, settings.commands, instance="cli")
        try:
            info = await service.queue_as_admin(args.imei, args.type, args.interval, by="cli")
        except LookupError:
            print(f"error: no device {args.imei} has been seen", file=sys.stderr)
            return 1
        except CommandRefused as exc:
            print(f"error: {exc.field}: {exc.message}", file=sys.stderr)
            return 1
        print(_command_json(info), flush=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (args.wait or 0)
        last = info.status
        while last in (command_store.QUEUED, command_store.SENT) and loop.time() < deadline:
            await asyncio.sleep(0.5)
            now = await command_store.get_command(db, info.id, datetime.now(UTC))
            if now is not None and now.status != last:
                last = now.status
                print(_command_json(now), flush=True)
        return 0

    result: int = _run_loop(_with_db(settings, action))
    return result


def cmd_config_protocols(_settings: Settings, _args: argparse.Namespace) -> int:
    from gateway.config import protocol_tables

    print(protocol_tables(), end="")
    return 0


def cmd_labels(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.activation.labels import LabelError, read_labels, write_labels

    content = _read_csv(args.file, args.encoding)
    if content is None:
        return 1
    try:
        labels = read_labels(content, settings.http.public_url)
        written = write_labels(labels, Path(args.out))
    except LabelError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(json.dumps({"labels": len(labels), "files": [str(p) for p in written],
                      "claim_url": settings.http.public_url + "/claim"}))
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store import audit

    async def action(db: Any) -> Any:
        return await audit.read(db, imei=args.imei, action=args.action, limit=args.limit)

    for row in _run_loop(_with_db(settings, action)):
        print(json.dumps(_plain(row), default=str))
    return 0


def _command_json(info: Any) -> str:
    """A command as one JSON line, the bytes sent in hex (`sent_hex`, as the admin API has it)
    rather than Python's repr of them."""
    out = _plain(info)
    payload = out.pop("payload", None)
    out["sent_hex"] = payload.hex() if payload is not None else None
    return json.dumps(out, default=str)


def _plain(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _positive(text: str) -> int:
    value = _not_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


_ENCODING_HELP = ("the file's text encoding (utf-8, cp1252, latin-1...); default: detected "
                  "(UTF-8 or UTF-16 with a byte-order mark, else Windows-1252, said on stderr)")
def _command_types() -> list[Any]:
    from protocols import CommandType

    return list(CommandType)


def build_parser() -> argparse.ArgumentParser:
    config_help = ("TOML configuration file (default: $GATEWAY_CONFIG, else the built-in "
                   "defaults documented in config/gateway.toml)")
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--config", metavar="FILE", help=config_help)
    # Also accepted after the subcommand (`gateway run --config FILE`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help=config_help, default=argparse.SUPPRESS)
    verbose_help = ("also log what the command does (at log.level) on stderr; without it, "
                    "commands other than run log warnings and errors only")
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    common.add_argument("-v", "--verbose", action="store_true", help=verbose_help,
                        default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        # `gateway <command> --help` starts with what `gateway --help` says the command does.
        kwargs.setdefault("description", kwargs.get("help"))
        return sub.add_parser(name, parents=[common], **kwargs)

    run = add("run", help="start the TCP listeners and the web app")
    run.add_argument("--instance-name", metavar="NAME",
                     help="this instance's name in logs, metrics and events (instance.name)")
    run.set_defaults(func=cmd_run)

    config = add("config", help="configuration helpers")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    tables = config_sub.add_parser(
        "protocols", parents=[common],
        help="print the [protocols.<name>] tables of every protocol, with their defaults")
    tables.set_defaults(func=cmd_config_protocols)

    db = add("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", parents=[common],
                           help="apply the migrations (PostgreSQL needs this once)")
    up.set_defaults(func=cmd_db_upgrade)

    devices = add("devices", help="list devices the gateway has seen (JSON lines)")
    devices.add_argument("--state", choices=["unclaimed", "claimed", "locked"])
    devices.add_argument("--limit", type=_positive, default=100, metavar="N",
                         help="list at most N devices (default 100), most recently seen first")
    devices.add_argument("--offset", type=_not_negative, default=0, metavar="N",
                         help="skip the first N devices (the next page: --offset 100)")
    devices.add_argument("--all", action="store_true", help="list every device")
    devices.set_defaults(func=cmd_devices)

    bind = add("bind", help="bind a seen device to an owner contact (admin)")
    bind.add_argument("imei")
    bind.add_argument("contact")
    bind.set_defaults(func=cmd_bind)

    release = add("release", help="end a device's binding (admin)")
    release.add_argument("imei")
    release.set_defaults(func=cmd_release)

    provision = add("provision", help="register a device's contact of record (where its "
                    "activation codes go) and/or its claim key (printed on its label)")
    provision.add_argument("imei", help="15-digit IMEI")
    provision.add_argument("contact", nargs="?", help="the buyer's e-mail or phone number "
                           "(+country code); same as --contact")
    provision.add_argument("--contact", dest="contact_option", metavar="C",
                           help="the buyer's e-mail or phone number (+country code)")
    provision.add_argument("--wire-id", metavar="ID",
                           help="the id the device sends when it is not its IMEI and it does "
                                "not report it (a JT/T 808 unit's terminal phone)")
    keys = provision.add_mutually_exclusive_group()
    keys.add_argument("--claim-key", metavar="K", help="the key printed on the device's label")
    keys.add_argument("--generate-claim-key", action="store_true",
                      help="make a random claim key and print it (once: only its HMAC is kept)")
    provision.set_defaults(func=cmd_provision)

    import_ = add("import-devices", help="provision devices from a CSV file of "
                  "imei,contact[,claim_key]")
    import_.add_argument("file", help="CSV file, comma, semicolon or tab separated; a header "
                         "row may name the columns in any order (contact,imei)")
    import_.add_argument("--encoding", default="auto", help=_ENCODING_HELP)
    import_.set_defaults(func=cmd_import)

    labels = add("labels", help="print a sheet of device labels (IMEI, claim key, QR code of "
                 "the claim URL at http.public_url) from a CSV file of imei,claim_key")
    labels.add_argument("file", help="CSV file of imei,claim_key rows, or with a header row "
                        "naming imei and claim_key among other columns")
    labels.add_argument("--encoding", default="auto", help=_ENCODING_HELP)
    labels.add_argument("--out", required=True, metavar="FILE",
                        help="labels.pdf, or labels.png (one PNG per sheet of 21)")
    labels.set_defaults(func=cmd_labels)

    unlock = add("unlock", help="let a device locked after failed codes be claimed again")
    unlock.add_argument("imei")
    unlock.set_defaults(func=cmd_unlock)

    command = add("command", help="queue a command for a device (admin): the running "
                  "gateway sends it when the device is connected; prints it as JSON")
    command.add_argument("imei")
    command.add_argument("type", choices=[t.value for t in _command_types()], metavar="TYPE",
                         help="position_single, report_interval (with --interval), "
                         "engine_stop, engine_resume or reboot (a protocol may not do all)")
    command.add_argument("--interval", type=int, metavar="S",
                         help="report_interval: seconds between reports")
    command.add_argument("--wait", type=float, default=0, metavar="S",
                         help="print each status change for up to S seconds")
    command.set_defaults(func=cmd_command)

    audit = add("audit", help="print the audit log, newest first (JSON lines)")
    audit.add_argument("--imei")
    audit.add_argument("--action", help="start, send, check, claim, release, unlock, ...")
    audit.add_argument("--limit", type=int, default=100)
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "instance_name", None):
        try:
            settings = load_settings(args.config, instance={"name": args.instance_name})
        except ConfigError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return 2
    # A command's output is its result: the audit lines and the like of what it did are
    # logged only when asked for (the server logs at log.level).
    quiet = args.command != "run" and not args.verbose
    logs.configure("WARNING" if quiet else settings.log.level, settings.log.format)
    try:
        result: int = args.func(settings, args)
    except Exception as exc:
        from gateway.store.errors import explain

        # A database that is missing, down or refusing us is the user's to fix: one line that
        # says how, not a traceback (anything else is a bug, and its traceback is useful).
        reason = explain(exc, settings.database.url)
        if reason is None:
            raise
        print(f"gateway: {reason}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
