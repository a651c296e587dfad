"""Drives the OpenAI fake with the official `openai` package, unchanged but for its base URL.

Usage: openai_client.py <fake base URL, ending in /v1> <key>

The fake's script (tests/providers_llm.rs) answers the requests that pass its checks with, in
order: code in a fence, a 500, a 429 with `Retry-After: 7`, then an answer cut off at the token
limit. The client must parse the answers and raise its own exception classes for the errors:
InternalServerError, RateLimitError, AuthenticationError (a wrong key), BadRequestError (no
messages) and NotFoundError (an unknown model). Retries are off, so each call is one request.
Prints a JSON summary; any surprise raises, so the exit code is the verdict.
"""

import openai
from openai import OpenAI

from fake_common import caught, run

MESSAGES = [
    {"role": "system", "content": "You write Manim Community Edition scenes."},
    {"role": "user", "content": "A circle that becomes a square."},
]


def drive(base: str, key: str) -> dict:
    client = OpenAI(api_key=key, base_url=base, max_retries=0)

    def create(model: str = "gpt-4.1", **extra):
        return client.chat.completions.create(model=model, messages=MESSAGES, **extra)

    done = create(temperature=0.2, max_completion_tokens=2000)
    choice = done.choices[0]
    assert done.object == "chat.completion" and done.id.startswith("chatcmpl-"), done
    assert done.model == "gpt-4.1", done.model
    assert choice.index == 0 and choice.message.role == "assistant", choice
    assert choice.finish_reason == "stop", choice.finish_reason
    usage = done.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0, usage

    server_error = caught(create, openai.InternalServerError)
    rate_limited = caught(create, openai.RateLimitError)
    cut = create()
    assert cut.choices[0].finish_reason == "length", cut

    wrong = OpenAI(api_key="sk-wrong-0123456789abcdef", base_url=base, max_retries=0)
    unauthorized = caught(
        lambda: wrong.chat.completions.create(model="gpt-4.1", messages=MESSAGES), openai.AuthenticationError
    )
    # The typed method will not leave `messages` out; the client's own generic call will.
    no_messages = caught(
        lambda: client.post("/chat/completions", body={"model": "gpt-4.1"}, cast_to=object), openai.BadRequestError
    )
    unknown_model = caught(lambda: create("gpt-nope"), openai.NotFoundError)

    return {
        "content": choice.message.content,
        "usage": usage.model_dump(),
        "server_error": server_error,
        "rate_limited": rate_limited,
        "cut_content": cut.choices[0].message.content,
        "unauthorized": unauthorized,
        "no_messages": no_messages,
        "unknown_model": unknown_model,
    }


if __name__ == "__main__":
    run(drive)
