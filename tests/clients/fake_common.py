"""What the clients driving the fakes share (elevenlabs_client.py, hume_client.py,
openai_client.py, anthropic_client.py): the command line, the JSON summary, and reading a
refusal as the client raises it.
Imported from the scripts' own folder, which Python puts first on the import path.
"""

import json
import sys


def caught(call, error) -> dict:
    """What the `error` (one of the client's exception classes) that `call` raises carries."""
    try:
        call()
    except error as e:
        return {
            "class": type(e).__name__,
            "status": e.status_code,
            "body": e.body,
            # Not every client's error keeps the response (ElevenLabs' and Hume's do not).
            "retry_after": getattr(getattr(e, "response", None), "headers", {}).get("retry-after"),
        }
    raise AssertionError(f"the fake did not refuse with {error.__name__}")


def refusal(call, error) -> tuple[int, object]:
    """The status and body of the `error` (the client's API error class) that `call` raises."""
    found = caught(call, error)
    return found["status"], found["body"]


def run(drive) -> None:
    """Prints, as JSON, the summary `drive(base, key)` returns for the fake's base URL and key
    given on the command line."""
    base, key = sys.argv[1], sys.argv[2]
    print(json.dumps(drive(base, key)))
