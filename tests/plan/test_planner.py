"""DefaultPlanner on wire JSON, without a server: purity, modes, rules, rejections."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import promptcache
from promptcache._api import Api, RequestInfo
from promptcache._errors import ConfigError, HintRejectedWarning
from promptcache._plan import AnthropicOptions, DefaultPlanner, OpenAIOptions
from promptcache._plan._layout import MARK_CHARS

LONG = "You are a careful assistant who follows the rules. " * 200  # ~2.5k tokens


def anth(model: str = "claude-sonnet-5", **kw: Any) -> RequestInfo:
    return RequestInfo(
        Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", model, "t1", False, **kw
    )


def oai(
    model: str = "gpt-5.5", base: str = "https://api.openai.com/v1", api: Api = Api.OPENAI_CHAT
) -> RequestInfo:
    return RequestInfo(api, base, model, "t1", False)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def breakpoints(body: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(x: Any, path: str) -> None:
        if isinstance(x, dict):
            if "cache_control" in x:
                out.append(path)
            for k, v in x.items():
                walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(body, "")
    return out


def no_marks(body: dict[str, Any]) -> bool:
    s = json.dumps(body, ensure_ascii=False)
    return not any(c in s for c in MARK_CHARS)


def test_bad_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        DefaultPlanner("sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["off", "safe", "auto"])
def test_rewrite_never_mutates_and_always_strips_marks(mode: Any) -> None:
    p = DefaultPlanner(mode)
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 10,
        "system": promptcache.dynamic("Now: 10:00\n") + promptcache.static(LONG),
        "messages": [{"role": "user", "content": "hi " + promptcache.dynamic("x")}],
    }
    before = copy.deepcopy(body)
    rw = p.rewrite(anth(), body)
    assert body == before
    assert rw.changed and no_marks(rw.body)
    if mode == "off":  # marks stripped, nothing moved
        assert rw.body["system"] == "Now: 10:00\n" + LONG


def test_signed_requests_are_left_alone() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": promptcache.static("x")}]}
    rw = DefaultPlanner("auto").rewrite(anth(signed=True), body)
    assert rw.body is body and not rw.changed


def test_safe_moves_marked_dynamic_system_text_after_the_prefix() -> None:
    p = DefaultPlanner("safe")
    body = {
        "max_tokens": 10,
        "system": promptcache.dynamic("Current time: 10:00\n") + promptcache.static(LONG),
        "messages": [{"role": "user", "content": "Question?"}],
    }
    out = p.rewrite(anth(), body).body
    assert out["system"][0]["text"] == LONG
    assert out["system"][0]["cache_control"] == {"type": "ephemeral"}
    last = out["messages"][-1]["content"]
    assert last[-1] == {"type": "text", "text": "Current time: 10:00\n"}
    assert "cache_control" not in last[-1]  # moved text is never written


def test_safe_does_not_move_unmarked_volatile_text_but_auto_does() -> None:
    body = {
        "max_tokens": 10,
        "system": "Current time: 2026-11-28T10:00:00Z\n" + LONG,
        "messages": [{"role": "user", "content": "Question?"}],
    }
    safe = DefaultPlanner("safe").rewrite(anth(), body).body
    assert safe["system"][0]["text"].startswith("Current time")
    rw = DefaultPlanner("auto").rewrite(anth(), body)
    assert rw.body["system"][0]["text"] == LONG
    assert rw.body["messages"][0]["content"][-1]["text"] == "Current time: 2026-11-28T10:00:00Z\n"
    assert any("moved 1 span" in n for n in rw.notes)


def test_user_breakpoints_count_and_the_total_never_exceeds_four() -> None:
    cc = {"type": "ephemeral"}
    msgs: list[dict[str, Any]] = []
    for i in range(8):
        msgs.append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": LONG, **({"cache_control": cc} if i < 3 else {})}
                ],
            }
        )
        msgs.append({"role": "assistant", "content": "ok"})
    msgs.append({"role": "user", "content": "last"})
    body = {"max_tokens": 5, "system": LONG, "messages": msgs, "cache_control": cc}
    out = DefaultPlanner("auto").rewrite(anth(), body).body
    assert len(breakpoints(out)) == 4  # 3 user + automatic = 4: nothing added
    body2 = {**body, "cache_control": None}
    del body2["cache_control"]
    out2 = DefaultPlanner("auto").rewrite(anth(), body2).body
    assert len(breakpoints(out2)) == 4


def test_below_minimum_gets_no_breakpoint_and_512_models_do() -> None:
    small = "Short rules. " * 60  # ~200 tokens
    body = {"max_tokens": 5, "system": small * 3, "messages": [{"role": "user", "content": "q"}]}
    assert breakpoints(DefaultPlanner("safe").rewrite(anth("claude-sonnet-5"), body).body) == []
    assert breakpoints(DefaultPlanner("safe").rewrite(anth("claude-opus-5"), body).body) != []
    opts = AnthropicOptions(min_tokens=100)
    assert breakpoints(DefaultPlanner("safe", anthropic=opts).rewrite(anth(), body).body) != []


def test_thinking_blocks_never_carry_cache_control() -> None:
    body = {
        "max_tokens": 5,
        "system": LONG,
        "messages": [
            {"role": "user", "content": "q1"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                ],
            },
            {"role": "user", "content": [{"type": "redacted_thinking", "data": "x"}]},
        ],
    }
    out = DefaultPlanner("safe").rewrite(anth(), body).body
    for path in breakpoints(out):
        assert "thinking" not in json.dumps(eval_path(out, path))


def eval_path(body: Any, path: str) -> Any:
    cur = body
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        cur = cur[int(part[1:-1])] if part.startswith("[") else cur[part]
    return cur


def test_ttl_turns_1h_when_reuse_gaps_exceed_5m() -> None:
    clock = Clock()
    p = DefaultPlanner("safe", clock=clock)
    body = {"max_tokens": 5, "system": LONG, "messages": [{"role": "user", "content": "q"}]}
    ttls = []
    for _ in range(4):
        out = p.rewrite(anth(), body).body
        ttls.append(out["system"][0]["cache_control"].get("ttl", "5m"))
        clock.t += 15 * 60
    assert ttls[0] == "5m" and ttls[-1] == "1h"
    fixed = DefaultPlanner("safe", anthropic=AnthropicOptions(ttl="1h")).rewrite(anth(), body).body
    assert fixed["system"][0]["cache_control"]["ttl"] == "1h"


def test_openai_key_stable_per_family_and_tenant_and_only_for_openai_hosts() -> None:
    p = DefaultPlanner("safe")
    b1 = {
        "model": "gpt-5.5",
        "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "a"}],
    }
    b2 = {
        "model": "gpt-5.5",
        "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "b"}],
    }
    r1, r2 = p.rewrite(oai(), b1), p.rewrite(oai(), b2)
    assert r1.body["prompt_cache_key"] == r2.body["prompt_cache_key"]
    assert r1.added_params == {"prompt_cache_key"}
    other = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-5.5", "t2", False)
    assert p.rewrite(other, b1).body["prompt_cache_key"] != r1.body["prompt_cache_key"]
    assert "prompt_cache_options" not in r1.body  # gpt-5.5 would reject it
    mine = {**b1, "prompt_cache_key": "user-key"}
    assert p.rewrite(oai(), mine).body["prompt_cache_key"] == "user-key"
    # A compatible server with a model that is not OpenAI's (vLLM, say) gets nothing ...
    llama = {**b1, "model": "meta-llama/Llama-3.1-8B-Instruct"}
    compat_info = oai(model="meta-llama/Llama-3.1-8B-Instruct", base="http://localhost:8000/v1")
    compat = p.rewrite(compat_info, llama)
    assert "prompt_cache_key" not in compat.body
    # ... and neither does any base URL declared compatible.
    declared = DefaultPlanner("safe", openai=OpenAIOptions(endpoint="compatible"))
    assert "prompt_cache_key" not in declared.rewrite(oai(base="http://localhost:8000/v1"), b1).body
    p2 = DefaultPlanner(
        "safe", openai=OpenAIOptions(compatible_accepts_cache_key=True, prompt_cache_key="k")
    )
    assert p2.rewrite(compat_info, llama).body["prompt_cache_key"] == "k"


def test_gpt_56_gets_explicit_breakpoints_and_options_never_retention() -> None:
    body = {
        "model": "gpt-6.1-sol",
        "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}],
    }
    rw = DefaultPlanner("safe").rewrite(oai("gpt-6.1-sol"), body)
    assert rw.body["prompt_cache_options"] == {"mode": "explicit"}
    assert rw.body["messages"][0]["content"][0]["prompt_cache_breakpoint"] == {"mode": "explicit"}
    assert "prompt_cache_retention" not in rw.body
    assert rw.added_params == {"prompt_cache_key", "prompt_cache_options"}


def test_responses_instructions_volatile_line_moves_to_a_trailing_developer_item() -> None:
    body: dict[str, Any] = {
        "model": "gpt-6.1-sol",
        "instructions": "Date: 2026-11-28\n" + LONG,
        "input": "hello",
    }
    chains = OpenAIOptions(chained_responses="always")
    stored = DefaultPlanner("auto", openai=chains).rewrite(
        oai("gpt-6.1-sol", api=Api.OPENAI_RESPONSES), body
    )
    assert stored.body["instructions"] == LONG  # the app chains stored responses: kept
    assert stored.body["input"][-1] == {"role": "developer", "content": "Date: 2026-11-28\n"}
    # By default a stored response is moved too (a chained turn then does not resend them).
    default = DefaultPlanner("auto").rewrite(oai("gpt-6.1-sol", api=Api.OPENAI_RESPONSES), body)
    assert "instructions" not in default.body
    assert default.body["input"][0]["content"][0]["text"] == LONG
    body["store"] = False
    rw = DefaultPlanner("auto").rewrite(oai("gpt-6.1-sol", api=Api.OPENAI_RESPONSES), body)
    # gpt-5.6+, not stored: the kept instructions lead the input as a developer message that
    # can carry the breakpoint; the date follows everything cached.
    assert "instructions" not in rw.body
    assert rw.body["input"][0]["role"] == "developer"
    assert rw.body["input"][0]["content"][0]["text"] == LONG
    assert rw.body["input"][1]["role"] == "user"
    assert rw.body["input"][-1] == {"role": "developer", "content": "Date: 2026-11-28\n"}
    old = DefaultPlanner("auto").rewrite(
        oai("gpt-5.5", api=Api.OPENAI_RESPONSES), {**body, "model": "gpt-5.5"}
    )
    assert old.body["instructions"] == LONG  # implicit caching reads instructions already
    assert old.body["input"][-1] == {"role": "developer", "content": "Date: 2026-11-28\n"}


def test_auto_sorts_tools_and_tool_arguments() -> None:
    tools = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in "cab"]
    msgs = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "a", "arguments": '{"z": 1, "a": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "r"},
    ]
    out = (
        DefaultPlanner("auto")
        .rewrite(oai(), {"model": "gpt-5.5", "tools": tools, "messages": msgs})
        .body
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["a", "b", "c"]
    assert out["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a": 2, "z": 1}'
    safe = (
        DefaultPlanner("safe")
        .rewrite(oai(), {"model": "gpt-5.5", "tools": tools, "messages": msgs})
        .body
    )
    assert [t["function"]["name"] for t in safe["tools"]] == ["c", "a", "b"]


def test_rejected_param_is_dropped_and_remembered_per_endpoint() -> None:
    p = DefaultPlanner("safe", openai=OpenAIOptions(compatible_accepts_cache_key=True))
    info = oai(base="http://localhost:9/v1")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    sent = p.rewrite(info, body)
    assert "prompt_cache_key" in sent.body
    err = b'{"error": {"message": "Unrecognized request argument supplied: prompt_cache_key"}}'
    with pytest.warns(HintRejectedWarning):
        retry = p.rejected(info, sent, 400, err)
    assert retry is not None and "prompt_cache_key" not in retry
    assert "prompt_cache_key" not in p.rewrite(info, body).body
    assert "prompt_cache_key" in p.rewrite(oai(base="http://localhost:10/v1"), body).body
    assert p.rejected(info, sent, 500, err) is None


def test_anthropic_cache_control_rejection_falls_back_to_the_written_body() -> None:
    p = DefaultPlanner("safe")
    body = {"max_tokens": 5, "system": LONG, "messages": [{"role": "user", "content": "q"}]}
    sent = p.rewrite(anth(), body)
    retry = p.rejected(anth(), sent, 400, b'{"error": {"message": "cache_control: too many"}}')
    assert retry == body
    assert breakpoints(p.rewrite(anth(), body).body) == []  # remembered for the endpoint


def test_concurrent_rewrites_share_state_safely() -> None:
    import threading

    p = DefaultPlanner("auto")
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            msgs: list[Any] = []
            for turn in range(30):
                msgs.append({"role": "user", "content": f"worker {k} turn {turn} " * 20})
                body = {"max_tokens": 5, "system": f"Now: 10:{turn:02d}\n" + LONG, "messages": msgs}
                out = p.rewrite(anth(), body).body
                assert len(breakpoints(out)) <= 4
                p.observe(anth(), p.rewrite(anth(), body), {"usage": {"input_tokens": 3000}})
                msgs.append({"role": "assistant", "content": "ok"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_families_whose_calls_share_nothing_stop_writing_their_end() -> None:
    clock = Clock()
    p = DefaultPlanner("safe", clock=clock)
    tools = [{"name": n, "description": LONG[:400], "input_schema": {}} for n in "abcdef"]
    written = []
    for i in range(5):
        order = tools[i % 6 :] + tools[: i % 6]  # the app lists its tools in a varying order
        body = {
            "max_tokens": 5,
            "tools": order,
            "system": LONG,
            "messages": [
                {"role": "user", "content": "task"},
                {"role": "assistant", "content": "step"},
                {"role": "user", "content": f"result {i}"},
            ],
        }
        written.append(bool(breakpoints(p.rewrite(anth(), body).body)))
        clock.t += 10
    # The first call writes speculatively; the second shares nothing and extends nothing, so
    # the family is not a conversation (and soon stale): nothing more is written.
    assert written == [True, False, False, False, False]


def test_observe_calibrates_token_estimates() -> None:
    p = DefaultPlanner("safe")
    body = {"max_tokens": 5, "system": LONG, "messages": [{"role": "user", "content": "q"}]}
    sent = p.rewrite(anth(), body)
    p.observe(anth(), sent, {"input_tokens": 10})  # tiny: ratio jumps, estimates grow
    p.observe(anth(), sent, None)
    ratio, calibrated = p._state.calibration.ratio("claude-sonnet-5")
    assert calibrated and ratio > 5


def test_an_all_dynamic_system_prompt_moves_whole_and_leaves_nothing_empty() -> None:
    now = promptcache.dynamic("Now: 10:00\n")
    a = DefaultPlanner("safe").rewrite(
        anth(), {"max_tokens": 5, "system": now, "messages": [{"role": "user", "content": "q"}]}
    )
    assert "system" not in a.body
    assert a.body["messages"][0]["content"][-1]["text"] == "Now: 10:00\n"
    o = DefaultPlanner("safe").rewrite(
        oai(),
        {
            "model": "gpt-5.5",
            "messages": [{"role": "system", "content": now}, {"role": "user", "content": "q"}],
        },
    )
    assert o.body["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "system", "content": "Now: 10:00\n"},
    ]
    r = DefaultPlanner("safe").rewrite(
        oai(api=Api.OPENAI_RESPONSES), {"model": "gpt-5.5", "instructions": now, "input": "q"}
    )
    assert "instructions" not in r.body
    assert r.body["input"][-1] == {"role": "developer", "content": "Now: 10:00\n"}


def test_nothing_after_moved_text_is_written_with_an_assistant_prefill() -> None:
    body = {
        "max_tokens": 5,
        "system": promptcache.dynamic("Now: 10:00\n") + LONG,
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Sure:"}],
    }
    out = DefaultPlanner("safe").rewrite(anth(), body).body
    user, prefill = out["messages"]
    assert user["content"][-1]["text"] == "Now: 10:00\n"
    assert "cache_control" not in json.dumps(user["content"][-1]) and isinstance(
        prefill["content"], str
    )
    assert breakpoints(out) == [".system[0]", ".messages[0].content[0]"]  # none after the tail


def test_auto_moves_a_line_seen_changing_twice_between_calls() -> None:
    p = DefaultPlanner("auto")
    moods = ["calm", "busy", "quiet", "hectic", "sleepy"]
    firsts = []
    for mood in moods:
        body = {
            "max_tokens": 5,
            "system": f"Office mood: {mood} today\n" + LONG,
            "messages": [{"role": "user", "content": "q"}],
        }
        out = p.rewrite(anth(), body).body
        firsts.append(out["system"][0]["text"].startswith("Office mood"))
    # seen changing on calls 2 and 3: moved from call 3 on (one edit alone is not enough)
    assert firsts == [True, True, False, False, False]
