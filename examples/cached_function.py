"""Memoize a whole app function that calls the SDK: ``@pc.cached``.

``find_order_number`` asks the model for the order number in an e-mail and post-processes the
answer; ``@pc.cached`` stores its result (``None`` included: "no order number" is an answer
too) in the PromptCache store, keyed by its arguments. The client argument cannot be keyed,
so ``key=`` says what to key on instead. ``summarise`` returns the SDK's own ``Message``,
which comes back from the cache as a ``Message``. The response cache is off here so that
``emu.calls`` counts exactly the times a function body really ran.

    python examples/cached_function.py
"""

from __future__ import annotations

import re
import tempfile

import anthropic

import promptcache
from promptcache.testing import Emulator

pc = promptcache.PromptCache(directory=tempfile.mkdtemp(), response_cache=False)


@pc.cached(ttl=24 * 3600, key=lambda client, email: email)  # key on the e-mail only
def find_order_number(client: anthropic.Anthropic, email: str) -> str | None:
    reply = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=20,
        messages=[{"role": "user", "content": f"Order number in this e-mail, or NONE:\n{email}"}],
    )
    found = re.search(r"\b\d{6}\b", reply.content[0].text)
    return found.group() if found else None  # the emulator's filler text has none


@pc.cached(key=lambda client, text: text)
def summarise(client: anthropic.Anthropic, text: str) -> anthropic.types.Message:
    return client.messages.create(
        model="claude-sonnet-4-6", max_tokens=30, messages=[{"role": "user", "content": text}]
    )


def main() -> None:
    with Emulator() as emu:
        client = pc.wrap(anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="sk-a"))
        email = "Hi, my parcel never arrived. Can you help? -- Sam"
        for attempt in (1, 2, 3):
            result = find_order_number(client, email)
            print(f"find_order_number #{attempt}: {result!r}  upstream calls={len(emu.calls)}")
        assert len(emu.calls) == 1
        print("a cached None is a hit, not a miss: the body ran once")

        print("store key:", find_order_number.cache_key(client, email))
        find_order_number.invalidate(client, email)  # forget this one call
        find_order_number(client, email)
        print(f"after invalidate(): upstream calls={len(emu.calls)}")

        first = summarise(client, "Summarise: the parcel never arrived.")
        again = summarise(client, "Summarise: the parcel never arrived.")
        print(f"summarise: {type(again).__name__}, equal={again == first}, ", end="")
        print(f"same object={again is first}, upstream calls={len(emu.calls)}")
        print("entries removed by cache_clear():", summarise.cache_clear())
    pc.close()


if __name__ == "__main__":
    main()
