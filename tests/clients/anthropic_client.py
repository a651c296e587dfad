"""Drives the Anthropic fake with the official `anthropic` package, unchanged but for its base URL.

Usage: anthropic_client.py <fake base URL> <key>

The fake's script (tests/providers_llm.rs) answers the requests that pass its checks with, in
order: code in a fence, a 529 (overloaded), a 500, a 429 with `Retry-After: 7`, then an answer
cut off at `max_tokens`. The client must parse the answers and raise its own exception classes
for the errors: OverloadedError and InternalServerError (both InternalServerError),
RateLimitError, AuthenticationError (a wrong key), BadRequestError (no `max_tokens`) and
NotFoundError (an unknown model). Retries are off, so each call is one request. Prints a JSON
summary; any surprise raises, so the exit code is the verdict.
"""

import anthropic
from anthropic import Anthropic

from fake_common import caught, run

SYSTEM = "You write Manim Community Edition scenes."
MESSAGES = [{"role": "user", "content": "A circle that becomes a square."}]


def drive(base: str, key: str) -> dict:
    client = Anthropic(api_key=key, base_url=base, max_retries=0)

    def create(model: str = "claude-sonnet-4-5", **extra):
        return client.messages.create(model=model, max_tokens=2048, system=SYSTEM, messages=MESSAGES, **extra)

    done = create(metadata={"user_id": "reelay-test"})
    assert done.type == "message" and done.role == "assistant" and done.id.startswith("msg_"), done
    assert done.model == "claude-sonnet-4-5", done.model
    assert done.stop_reason == "end_turn" and done.stop_sequence is None, done
    assert [block.type for block in done.content] == ["text"], done.content
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0, done.usage

    overloaded = caught(create, anthropic.InternalServerError)
    server_error = caught(create, anthropic.InternalServerError)
    rate_limited = caught(create, anthropic.RateLimitError)
    cut = create()
    assert cut.stop_reason == "max_tokens", cut

    wrong = Anthropic(api_key="sk-ant-wrong", base_url=base, max_retries=0)
    unauthorized = caught(
        lambda: wrong.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES),
        anthropic.AuthenticationError,
    )
    # The typed method will not leave `max_tokens` out; the client's own generic call will.
    no_max_tokens = caught(
        lambda: client.post("/v1/messages", body={"model": "claude-sonnet-4-5", "messages": MESSAGES}, cast_to=object),
        anthropic.BadRequestError,
    )
    unknown_model = caught(lambda: create("claude-nope"), anthropic.NotFoundError)

    return {
        "text": done.content[0].text,
        "usage": {"input_tokens": done.usage.input_tokens, "output_tokens": done.usage.output_tokens},
        "overloaded": overloaded,
        "server_error": server_error,
        "rate_limited": rate_limited,
        "cut_text": cut.content[0].text,
        "unauthorized": unauthorized,
        "no_max_tokens": no_max_tokens,
        "unknown_model": unknown_model,
    }


if __name__ == "__main__":
    run(drive)
