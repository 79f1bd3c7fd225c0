"""Operations on the agent's own configuration: set-config and rotate-credentials.

Both rewrite the TOML file atomically (written aside, fsynced, renamed: a power cut leaves
the old file or the new one, never half of each), after validating the whole new
configuration the way the daemon will load it.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from edge.config import EdgeConfig, dump_config
from edge.state import atomic_write

from .device_http import HttpFailed
from .operations import BaseOperation, ExecutionContext, JobFailed, JobRejected

# What set-config may change, and nothing else: a wrong broker address or device id sent
# remotely could cut the device off for good. Mirrors the control plane's list.
SETTABLE: frozenset[str] = frozenset(
    {
        "timezone",
        "control_plane_url",
        "telemetry.interval_s",
        "telemetry.batch_max",
        "telemetry.outbox_max_telemetry",
        "mqtt.keepalive",
        "mqtt.backoff_cap_s",
        "jobs.health_deadline_s",
    }
)
# Applied to the running daemon at once (through JobEnv.on_config); the rest at next start.
LIVE: frozenset[str] = frozenset({"telemetry.interval_s", "telemetry.batch_max"})

ConfigValue = str | int | float | bool


def _config_path(ctx: ExecutionContext) -> Path:
    if ctx.env.config_path is None:
        raise JobFailed("the agent does not know its configuration file")
    return ctx.env.config_path


def _load_tree(path: Path) -> dict[str, Any]:
    try:
        tree = msgspec.toml.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise JobFailed(f"{path}: cannot read the configuration: {exc}") from exc
    if not isinstance(tree, dict):
        raise JobFailed(f"{path}: not a TOML table")
    return tree


def _validated(tree: dict[str, Any], field_prefix: str) -> EdgeConfig:
    try:
        return msgspec.convert(tree, EdgeConfig)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason, sep, where = message.rpartition(" - at `")
        path = where.rstrip("`").removeprefix("$.") if sep else ""
        raise JobRejected(
            f"{field_prefix}{'.' + path if path else ''}: {reason or message}"
        ) from None


def _write(path: Path, config: EdgeConfig) -> None:
    # 0600: the file holds the device's broker password.
    atomic_write(path, dump_config(config), mode=0o600)


class SetConfigParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    settings: Annotated[dict[str, ConfigValue], Meta(min_length=1, max_length=50)]


class SetConfig(BaseOperation):
    """Change allowed keys of the configuration file, validated, atomically."""

    name = "set-config"
    params = SetConfigParams

    async def run(self, ctx: ExecutionContext, params: SetConfigParams) -> dict[str, str]:
        """Validate the whole new configuration, write it, apply what can be applied live."""
        for key in params.settings:
            if key not in SETTABLE:
                raise JobRejected(
                    f"parameters.settings.{key}: not settable remotely "
                    f"(allowed: {', '.join(sorted(SETTABLE))})"
                )
        path = _config_path(ctx)
        tree = await asyncio.to_thread(_load_tree, path)
        for key, value in params.settings.items():
            node = tree
            *sections, leaf = key.split(".")
            for section in sections:
                node = node.setdefault(section, {})
            node[leaf] = value
        config = _validated(tree, "parameters.settings")
        await asyncio.to_thread(_write, path, config)
        live = sorted(k for k in params.settings if k in LIVE and ctx.env.on_config is not None)
        if ctx.env.on_config is not None:
            ctx.env.on_config(config)
        later = sorted(k for k in params.settings if k not in live)
        return {
            "changed": ",".join(sorted(params.settings)),
            "applied_now": ",".join(live),
            "at_next_start": ",".join(later),
        }


class RotateParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class RotateCredentials(BaseOperation):
    """A new MQTT password: made here, accepted by the control plane, then saved.

    The new password is noted in the (0600) journal before the control plane is asked, so
    an agent that stops halfway finishes at its next start, before it connects with a
    password the broker may no longer accept (see ``JobRunner.prepare``).
    """

    name = "rotate-credentials"
    params = RotateParams
    resume_before_connect: ClassVar[bool] = True

    async def _apply(self, ctx: ExecutionContext, new: str) -> dict[str, str]:
        http = ctx.env.http
        if http is None:
            raise JobFailed("control_plane_url is not configured: cannot rotate credentials")
        path = _config_path(ctx)
        old = ctx.env.config.mqtt.password
        if new != old:
            try:
                await http.set_password(new, auth_password=old)
            except HttpFailed as exc:
                if exc.status != 401:
                    raise JobFailed(
                        f"the control plane did not take the new password: {exc}"
                    ) from exc
                # Refused with the old password: an earlier attempt may have got through.
                try:
                    await http.set_password(new, auth_password=new)
                except HttpFailed as again:
                    raise JobFailed(f"neither password is accepted: {again}") from again
        await ctx.progress(70, step="saving the new password")
        tree = await asyncio.to_thread(_load_tree, path)
        tree.setdefault("mqtt", {})["password"] = new
        config = _validated(tree, "mqtt")
        await asyncio.to_thread(_write, path, config)
        # In place: the MQTT session holds this object and uses it at its next connect; the
        # connection in use stays up (the broker only checks passwords on connect).
        ctx.env.config.mqtt.password = new
        return {"applied": "at the next broker connection"}

    async def run(self, ctx: ExecutionContext, params: RotateParams) -> dict[str, str]:
        """Make a password, note it, have the control plane accept it, save it."""
        new = secrets.token_urlsafe(32)
        ctx.note({"password": new})
        await ctx.progress(30, step="asking the control plane")
        return await self._apply(ctx, new)

    async def resume(self, ctx: ExecutionContext, note: dict[str, Any]) -> dict[str, str]:
        """Finish a rotation cut short: both steps are idempotent."""
        new = note.get("password")
        if not isinstance(new, str) or not new:
            raise JobFailed("interrupted before a new password was made; nothing changed")
        return await self._apply(ctx, new)
