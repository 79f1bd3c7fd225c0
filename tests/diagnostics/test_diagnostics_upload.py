"""Uploading the report, and the diagnose command that prints, saves and uploads it."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.diagnostics import UploadError, add_arguments, run, upload_report

REPORT: dict[str, Any] = {"v": 1, "generated_at": 1_709_288_553.0, "problems": {}}


def _client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_upload_posts_json_with_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"machine": "WS-0042"})

    with _client(handler) as client:
        answer = upload_report(
            REPORT, "https://cp.example/api/workshop/reports", token="t0k", client=client
        )
    assert answer == {"machine": "WS-0042"}
    (request,) = seen
    assert request.method == "POST"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert json.loads(request.content) == REPORT


def test_upload_without_token_and_empty_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers
        return httpx.Response(204)

    with _client(handler) as client:
        assert upload_report(REPORT, "http://cp.local/r", client=client) is None


def test_upload_errors_name_the_url_and_the_cause() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="token expired\n")

    with _client(refused) as client, pytest.raises(UploadError, match="HTTP 403 token expired"):
        upload_report(REPORT, "https://cp.example/r", client=client)

    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known", request=request)

    with (
        _client(offline) as client,
        pytest.raises(UploadError, match=r"cp\.example/r failed: ConnectError"),
    ):
        upload_report(REPORT, "https://cp.example/r", client=client)
    with pytest.raises(UploadError, match="url: expected an http"):
        upload_report(REPORT, "ftp://cp.example/r")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, str, str | None]] = []
        self.fail = fail

    def __call__(self, report: Any, url: str, *, token: str | None = None) -> None:
        self.calls.append((report, url, token))
        if self.fail:
            raise UploadError(f"upload to {url} failed: HTTP 503")


def _build(**kwargs: Any) -> dict[str, Any]:
    return {**REPORT, "test_devices": kwargs["test_devices"]}


def test_command_writes_prints_and_uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIFRONTE_UPLOAD_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    out, err, upload = io.StringIO(), io.StringIO(), Recorder()
    args = _args("--json", "-o", str(tmp_path / "r.json"), "--test-devices", "--upload",
                 "https://cp/r", "--token-file", str(token))  # fmt: skip
    assert run(args, build=_build, upload=upload, out=out, err=err) == 0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved == json.loads(out.getvalue()) == {**REPORT, "test_devices": True}
    assert upload.calls == [(saved, "https://cp/r", "s3cret")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "token"]  # no temp left
    assert err.getvalue() == ""


def test_command_prints_the_summary_and_takes_the_token_from_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIFRONTE_UPLOAD_TOKEN", "from-env")
    out, upload = io.StringIO(), Recorder()
    assert (
        run(_args("--lang", "en", "--upload", "https://cp/r"), build=_build, upload=upload, out=out)
        == 0
    )
    assert out.getvalue().startswith("ΔiFronte — hardware report of 2024-03-01 10:22 UTC\n")
    assert upload.calls[0][2] == "from-env"


def test_command_upload_failure_and_bad_token_file(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run(
        _args("--upload", "https://cp/r"),
        build=_build,
        upload=Recorder(fail=True),
        out=out,
        err=err,
    )
    assert code == 2
    assert out.getvalue()  # the summary is printed even when the upload fails
    assert err.getvalue() == "upload to https://cp/r failed: HTTP 503\n"
    err = io.StringIO()
    missing = tmp_path / "nope"
    assert run(_args("--token-file", str(missing)), build=_build, err=err) == 64
    assert err.getvalue().startswith(f"--token-file: cannot read {missing}")
