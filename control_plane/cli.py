"""``difronte``: run the control plane, the demo, and admin commands."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from sqlalchemy import select


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the control plane with uvicorn."""
    import uvicorn

    from .app import create_app

    uvicorn.run(
        create_app(), host=args.host, port=args.port, log_level=args.log_level, proxy_headers=True
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema up to date."""
    from .config import get_settings
    from .db import migrate

    url = get_settings().database_url
    migrate(url)
    print(f"database at {url.split('@')[-1]} is up to date")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    """Create a person with a role."""
    from .config import get_settings
    from .db import make_engine, make_sessionmaker, transaction
    from .models import Role, User
    from .security import hash_password

    if args.role not in {r.value for r in Role}:
        print(f"role: must be one of {', '.join(r.value for r in Role)}", file=sys.stderr)
        return 2
    password = args.password or getpass.getpass("password: ")
    factory = make_sessionmaker(make_engine(get_settings().database_url))
    with transaction(factory) as session:
        if session.execute(select(User).where(User.email == args.email)).first():
            print(f"email: {args.email} already has an account", file=sys.stderr)
            return 1
        session.add(
            User(
                email=args.email,
                name=args.name or args.email,
                role=args.role,
                password_hash=hash_password(password),
            )
        )
    print(f"created {args.role} {args.email}")
    return 0


def cmd_device_add(args: argparse.Namespace) -> int:
    """Register a device and print its broker credentials once."""
    from .config import get_settings
    from .db import make_engine, make_sessionmaker, transaction
    from .devices import create_device

    settings = get_settings()
    factory = make_sessionmaker(make_engine(settings.database_url))
    try:
        with transaction(factory) as session:
            device, password = create_device(
                session, settings, device_id=args.id, name=args.name, group=args.group
            )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"registered {device.id}; MQTT username {device.id} password {password}")
    return 0


def cmd_broker_sync(args: argparse.Namespace) -> int:
    """Rewrite the broker's password and ACL files from the registry."""
    from .config import get_settings
    from .db import make_engine, make_sessionmaker, transaction
    from .devices import broker_files, sync_broker

    settings = get_settings()
    if broker_files(settings) is None:
        print(
            "set DIFRONTE_BROKER_PASSWORD_FILE and DIFRONTE_BROKER_ACL_FILE first", file=sys.stderr
        )
        return 2
    factory = make_sessionmaker(make_engine(settings.database_url))
    with transaction(factory) as session:
        count = sync_broker(session, settings)
    print(f"wrote credentials for {count} devices to {settings.broker_password_file}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo: broker, control plane, simulated devices."""
    from .demo import run_demo

    return run_demo(port=args.port, devices=args.devices, runtime=args.runtime)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="difronte", description="ΔiFronte control plane")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the control plane")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)

    user = sub.add_parser("create-user", help="create a person with a role")
    user.add_argument("email")
    user.add_argument("--role", required=True)
    user.add_argument("--name", default="")
    user.add_argument("--password", default="", help="prompted for when omitted")
    user.set_defaults(func=cmd_create_user)

    dev = sub.add_parser("device-add", help="register a device, print its MQTT password")
    dev.add_argument("id")
    dev.add_argument("--name", default="")
    dev.add_argument("--group", default="")
    dev.set_defaults(func=cmd_device_add)

    sub.add_parser("broker-sync", help="rewrite Mosquitto's password and ACL files").set_defaults(
        func=cmd_broker_sync
    )

    demo = sub.add_parser("demo", help="broker + control plane + simulated devices")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--devices", type=int, default=3)
    demo.add_argument("--runtime", default="var/demo", help="runtime directory (recreated)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``difronte``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
