"""Reach the emulator while the SDK keeps a production base URL.

Production apps keep the SDK's default base URL (``https://api.openai.com/v1``,
``https://api.anthropic.com``) or point it at a gateway. Tests that want to see what promptcache
does *there* hand the SDK an ``http_client`` whose transport sends every request to the
emulator on loopback instead, path and headers untouched. The SDK, and anything that inspects
``client.base_url``, still sees the production URL.
"""

from __future__ import annotations

from typing import Any

import httpx2

__all__ = ["AsyncRedirectTransport", "RedirectTransport"]


def _retarget(request: httpx2.Request, base_url: str) -> httpx2.Request:
    target = httpx2.URL(base_url)
    # Keep the production host visible to the emulator (it records it per call).
    request.headers["x-emulator-original-host"] = request.url.host
    request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
    return request


class RedirectTransport(httpx2.BaseTransport):
    """An httpx2 transport that sends every request to ``base_url``, keeping its path."""

    def __init__(self, base_url: str, **transport_options: Any) -> None:
        self._base_url = base_url
        self._inner = httpx2.HTTPTransport(**transport_options)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._inner.handle_request(_retarget(request, self._base_url))

    def close(self) -> None:
        self._inner.close()


class AsyncRedirectTransport(httpx2.AsyncBaseTransport):
    """The async twin of :class:`RedirectTransport`."""

    def __init__(self, base_url: str, **transport_options: Any) -> None:
        self._base_url = base_url
        self._inner = httpx2.AsyncHTTPTransport(**transport_options)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._inner.handle_async_request(_retarget(request, self._base_url))

    async def aclose(self) -> None:
        await self._inner.aclose()
