"""``difronte-edge``: the device daemon and its tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from .config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/difronte/edge.toml"


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT (a second one forces the exit)."""
    from .daemon import EdgeDaemon

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    async def _main() -> int:
        daemon = EdgeDaemon(config, config_path=Path(args.config))
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()
        signals = 0

        def _on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                logging.getLogger("edge").info("stopping (send again to force)")
                daemon.request_stop()
            elif main_task is not None:
                main_task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal)
        return await daemon.run()

    try:
        return asyncio.run(_main())
    except asyncio.CancelledError:
        return 1


def cmd_status(args: argparse.Namespace) -> int:
    """Print what the daemon last wrote about itself."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    path = config.state_dir / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"no status yet ({path}): is the daemon running?")
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    state = "connected" if status.get("connected") else "NOT connected"
    print(f"device {status.get('device_id')}: {state} (session {status.get('session')})")
    if status.get("auth_failed"):
        print("the broker REFUSED the password: re-enroll the device or fix the config")
    if status.get("last_error"):
        print(f"last error: {status['last_error']}")
    print(f"outbox: {status.get('outbox_depth')} waiting, {status.get('outbox_dropped')} dropped")
    return 0 if status.get("connected") else 1


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enroll this PC with a token from the fleet manager."""
    from .enroll import EnrollError, enroll

    try:
        result = enroll(
            args.url, args.token, Path(args.config), state_dir=args.state_dir, force=args.force
        )
    except EnrollError as exc:
        print(f"enrollment failed: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled as {result.device_id}; configuration written to {result.config_path}")
    if result.ca_path:
        print(f"broker CA certificate pinned in {result.ca_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="difronte-edge", description="ΔiFronte device daemon")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default=DEFAULT_CONFIG)
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="is the daemon connected, and what is waiting")
    status.add_argument("--config", default=DEFAULT_CONFIG)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    enr = sub.add_parser("enroll", help="get this PC's identity with an enrollment token")
    enr.add_argument("--url", required=True, help="control plane, e.g. https://cp.example.org")
    enr.add_argument("--token", required=True)
    enr.add_argument("--config", default=DEFAULT_CONFIG)
    enr.add_argument("--state-dir", default="/var/lib/difronte")
    enr.add_argument("--force", action="store_true", help="replace an existing configuration")
    enr.set_defaults(func=cmd_enroll)
    from . import diagnostics

    diag = sub.add_parser("diagnose", help="hardware report (readable summary, or --json)")
    diagnostics.add_arguments(diag)
    diag.set_defaults(func=diagnostics.run)
    from . import commission

    wake_test = sub.add_parser(
        "commission-wake", help="arm the RTC alarm a few minutes ahead and power off (wake test)"
    )
    commission.add_arguments(wake_test)
    wake_test.set_defaults(func=commission.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``difronte-edge``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
