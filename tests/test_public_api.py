"""The curated public surface and the import-time promises."""

from __future__ import annotations

import subprocess
import sys

import promptcache

EXPECTED = {
    "AnthropicOptions",
    "ConfigError",
    "HintRejectedWarning",
    "MissingDependencyError",
    "ModelPrice",
    "OpenAIOptions",
    "PriceWarning",
    "PromptCache",
    "PromptCacheError",
    "PromptCacheWarning",
    "RewriteWarning",
    "StoreError",
    "StoreWarning",
    "Summary",
    "Usage",
    "__version__",
    "bypass",
    "cached",
    "current_attribution",
    "dynamic",
    "layout",
    "read_only",
    "refresh",
    "static",
    "tag",
    "track",
    "wrap",
}


def test_all_is_pinned_and_sorted() -> None:
    assert set(promptcache.__all__) == EXPECTED
    assert list(promptcache.__all__) == sorted(promptcache.__all__)


def test_every_public_name_resolves() -> None:
    for name in promptcache.__all__:
        assert getattr(promptcache, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        promptcache.does_not_exist  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_loads_no_sdk_and_no_pricing() -> None:
    code = (
        "import sys, promptcache\n"
        "heavy = [m for m in ('openai', 'anthropic', 'genai_prices', 'pydantic', 'httpx2')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
