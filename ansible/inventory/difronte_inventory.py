#!/usr/bin/env python3
"""Ansible dynamic inventory: ΔiFronte devices, by group, reached at their VPN tunnel address.

Lists the enrolled, non-revoked devices the control plane knows, with ``ansible_host`` set to
each device's WireGuard address, so a technician on the hub (or routed through it) runs e.g.::

    export DIFRONTE_URL=https://cp.example.org DIFRONTE_TOKEN_FILE=~/.difronte-token
    ansible -i ansible/inventory/difronte_inventory.py milano_nord -m ping

Environment:
    DIFRONTE_URL          the control plane (default http://127.0.0.1:8000)
    DIFRONTE_TOKEN        a technician's (or fleet manager's) API token, or
    DIFRONTE_TOKEN_FILE   a file holding it
    DIFRONTE_CA           CA certificate to trust for https (default: the system's)
    DIFRONTE_ONLINE_ONLY  "1": only devices online now (most PCs sleep between appointments)
    DIFRONTE_TIMEOUT      seconds to wait for the control plane (default 20)

Only the standard library: Ansible runs this with whatever Python the technician has.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class InventoryError(Exception):
    """Something a technician can fix: the message says what."""


def _token() -> str:
    token = os.environ.get("DIFRONTE_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("DIFRONTE_TOKEN_FILE", "").strip()
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise InventoryError(
                f"DIFRONTE_TOKEN_FILE: cannot read {path}: {exc.strerror}"
            ) from exc
        if token:
            return token
        raise InventoryError(f"DIFRONTE_TOKEN_FILE: {path} is empty")
    raise InventoryError("DIFRONTE_TOKEN: set a technician's API token (or DIFRONTE_TOKEN_FILE)")


def fetch_inventory() -> dict[str, Any]:
    """The inventory JSON from the control plane."""
    base = os.environ.get("DIFRONTE_URL", "http://127.0.0.1:8000").rstrip("/")
    query = "?online=true" if os.environ.get("DIFRONTE_ONLINE_ONLY") == "1" else ""
    url = f"{base}/api/v1/vpn/inventory{query}"
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {_token()}", "Accept": "application/json"}
    )
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=os.environ.get("DIFRONTE_CA") or None)
    try:
        timeout = float(os.environ.get("DIFRONTE_TIMEOUT", "20"))
    except ValueError:
        raise InventoryError("DIFRONTE_TIMEOUT: must be a number of seconds") from None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = _problem_detail(exc)
        if exc.code == 401:
            raise InventoryError(f"{url}: the token was refused ({detail})") from exc
        if exc.code == 403:
            raise InventoryError(f"{url}: this token may not list devices ({detail})") from exc
        raise InventoryError(f"{url}: HTTP {exc.code} ({detail})") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InventoryError(f"{url}: cannot reach the control plane: {reason}") from exc
    except ValueError as exc:
        raise InventoryError(f"{url}: the answer is not JSON: {exc}") from exc
    if not isinstance(body, dict) or "_meta" not in body:
        raise InventoryError(f"{url}: the answer is not an inventory")
    return body


def _problem_detail(exc: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(exc.read() or b"{}")
    except ValueError:
        return exc.reason
    detail = problem.get("detail") if isinstance(problem, dict) else None
    return str(detail or exc.reason)


def main(argv: list[str] | None = None) -> int:
    """``--list`` prints the whole inventory, ``--host NAME`` one host's variables."""
    parser = argparse.ArgumentParser(description="ΔiFronte devices for Ansible, over the VPN")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="every group and host")
    mode.add_argument("--host", help="the variables of one host")
    args = parser.parse_args(argv)
    try:
        inventory = fetch_inventory()
    except InventoryError as exc:
        print(f"difronte inventory: {exc}", file=sys.stderr)
        return 1
    if args.list:
        json.dump(inventory, sys.stdout, indent=2, sort_keys=True)
    else:
        json.dump(inventory["_meta"]["hostvars"].get(args.host, {}), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
