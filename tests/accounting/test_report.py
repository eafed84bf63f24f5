"""``promptcache report``: table, --json, --by, --since, unknown costs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from promptcache._accounting import LedgerAccountant
from promptcache._accounting._pricing import price_data_version
from promptcache._cli._report import parse_when
from promptcache.cli import main
from tests.accounting.payloads import CASES
from tests.accounting.test_ledger import BY_NAME, info


@pytest.fixture()
def filled(tmp_path: Path) -> Path:
    acc = LedgerAccountant(tmp_path)
    chat, ant = BY_NAME["openai-chat-json"], BY_NAME["anthropic-json"]
    now = time.time()
    yesterday = now - 86400
    meta = acc.record_upstream(info(chat, tags=("search",), function="app.find", started=yesterday),
                               chat.body, status=200, complete=True)  # fmt: skip
    acc.record_local_hit(info(chat, tags=("search",), function="app.find", started=now), meta)
    acc.record_upstream(info(ant, function="app.chat", started=now), ant.body, status=200,
                        complete=True)  # fmt: skip
    acc.close()
    return tmp_path


def test_json_summary_and_groups(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--dir", str(filled), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["requests"] == 3 and data["local_hits"] == 1
    assert data["input_tokens"] == 12000 + 23050
    assert data["cost"] == "0.0485"  # 0.0153 + 0.0332, Decimal as string
    assert data["avoided_by_local_hits"] == "0.0153"
    assert data["saved_by_provider_cache"] == str((29000 - 15300 + 100200 - 33200) / 10**6)
    for field in ("cache_read_tokens", "cache_write_tokens", "uncached_input_tokens",
                  "output_tokens", "cost_without_cache", "read_share"):  # fmt: skip
        assert field in data
    assert data["by"] == "model" and set(data["groups"]) == {"gpt-6.1-sol", "claude-opus-5-5"}


def test_report_names_its_price_data(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Dollar figures come with the price data that produced them, in the table and in JSON.
    version = price_data_version()
    assert main(["report", "--dir", str(filled), "--no-chart"]) == 0
    assert f"Prices: {version}, applied when each call was recorded." in capsys.readouterr().out
    assert main(["report", "--dir", str(filled), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["price_data"] == version
    assert main(["report", "--dir", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["price_data"] == version


def test_json_by_function_and_since(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["report", "--dir", str(filled), "--json", "--by", "function", "--since", "1h"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["requests"] == 2
    assert set(data["groups"]) == {"app.find", "app.chat"}
    assert data["groups"]["app.find"]["local_hits"] == 1


def test_table_and_chart(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--dir", str(filled), "--by", "tag"]) == 0
    out = capsys.readouterr().out
    assert "saved by cache" in out and "avoided (local)" in out
    assert "search" in out and "(none)" in out and "total" in out
    assert "$0.0485" in out
    assert "Daily spend vs savings" in out and "█" in out


def test_env_dir_and_empty(pc_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 0
    assert "No calls recorded yet" in capsys.readouterr().out
    assert not (pc_dir / "ledger.sqlite3").exists()  # reading created nothing
    assert main(["report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 0


def test_unknown_cost_is_marked_not_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acc = LedgerAccountant(tmp_path)
    c = BY_NAME["openai-chat-json"]
    acc.record_upstream(info(c), c.body, status=200, complete=True)
    nu = BY_NAME["openai-chat-sse-no-usage"]
    acc.record_upstream(info(nu), nu.body, status=200, complete=True)
    acc.close()
    assert main(["report", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "$0.0153+?" in out and "no known cost" in out
    assert main(["report", "--dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost"] is None and data["cost_known"] == "0.0153"


def test_bad_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--dir", str(tmp_path), "--since", "yesterdayish"]) == 2
    assert "cannot read time" in capsys.readouterr().err


def test_parse_when() -> None:
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC).timestamp()
    assert parse_when("7d", now) == now - 7 * 86400
    assert parse_when("90m", now) == now - 5400
    assert parse_when("today", now) == datetime(2026, 11, 28, tzinfo=UTC).timestamp()
    assert parse_when("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    assert len(CASES) > 0
