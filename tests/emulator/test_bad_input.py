"""Bad input gets each provider's error status and JSON shape, never a traceback."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest

from promptcache.testing import Emulator


@pytest.fixture()
def http(emulator: Emulator) -> Any:
    with httpx2.Client(base_url=emulator.base_url) as client:
        yield client


def _openai_error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in resp.text
    err: dict[str, Any] = body["error"]
    return err


def _anthropic_error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status
    body: dict[str, Any] = resp.json()
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert "Traceback" not in resp.text
    err: dict[str, Any] = body["error"]
    return err


def test_malformed_json(http: Any) -> None:
    err = _openai_error(http.post("/v1/chat/completions", content=b"{nope"), 400)
    assert err["type"] == "invalid_request_error"
    aerr = _anthropic_error(http.post("/v1/messages", content=b"{nope"), 400)
    assert aerr["type"] == "invalid_request_error"


def test_missing_required_fields(http: Any) -> None:
    err = _openai_error(http.post("/v1/chat/completions", json={"model": "gpt-4o"}), 400)
    assert err["param"] == "messages" and err["code"] == "missing_required_parameter"
    err = _openai_error(http.post("/v1/chat/completions", json={"messages": []}), 400)
    assert err["param"] == "model"
    err = _openai_error(http.post("/v1/responses", json={"model": "gpt-4.1"}), 400)
    assert err["param"] == "input"
    msg = {"role": "user", "content": "hi"}
    aerr = _anthropic_error(
        http.post("/v1/messages", json={"model": "claude-sonnet-5", "messages": [msg]}), 400
    )
    assert "max_tokens" in aerr["message"]
    aerr = _anthropic_error(http.post("/v1/messages", json={"max_tokens": 5}), 400)
    assert "model" in aerr["message"]


def test_wrong_types_are_400_not_500(http: Any) -> None:
    bad_bodies: list[tuple[str, Any]] = [
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": "hi"}),
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": [3]}),
        ("/v1/chat/completions", [1, 2]),
        ("/v1/responses", {"model": "gpt-4.1", "input": 5}),
        ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "bot"}]}),
        ("/v1/messages", {"model": "m", "max_tokens": -1, "messages": []}),
        ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]}),
        ("/v1/messages", {"model": "m", "max_tokens": 5, "system": 3, "messages": [{}]}),
    ]
    for path, body in bad_bodies:
        resp = http.post(path, json=body)
        assert resp.status_code == 400, (path, body, resp.text)
        assert "Traceback" not in resp.text


def test_unknown_routes_are_404_in_provider_shape(http: Any) -> None:
    err = _openai_error(http.post("/v1/embeddingz", json={}), 404)
    assert "Invalid URL" in err["message"]
    aerr = _anthropic_error(
        http.post("/v1/nothing", json={}, headers={"anthropic-version": "2023-06-01"}), 404
    )
    assert aerr["type"] == "not_found_error"
    _openai_error(http.get("/v1/chat/completions"), 404)


def test_sdk_raises_its_own_errors(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gpt-4o")
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.create(model="claude-sonnet-5", max_tokens=5, messages=[])


def test_failures_are_recorded(emulator: Emulator, http: Any) -> None:
    http.post("/v1/chat/completions", content=b"]")
    call = emulator.calls[-1]
    assert call.status == 400 and call.request_body is None and call.api == "openai.chat"
    assert call.error_type == "invalid_request_error"


def test_control_endpoints(emulator: Emulator, http: Any) -> None:
    assert http.get("/_emulator/health").json()["ok"] is True
    now = emulator.clock.now()
    assert http.post("/_emulator/clock/advance", json={"seconds": 10}).json()["now"] == now + 10
    assert http.post("/_emulator/faults", json={"kind": "server_error"}).status_code == 200
    assert http.post("/v1/chat/completions", json={"model": "m", "messages": []}).status_code == 500
    assert http.post("/_emulator/faults", json={"kind": "bogus"}).status_code == 400
    assert http.post("/_emulator/reset").json() == {"ok": True}
    assert emulator.calls == []
    assert http.get("/_emulator/nope").status_code == 404
