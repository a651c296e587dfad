"""What the clients driving the text-to-speech fakes share (elevenlabs_client.py,
hume_client.py): the command line, the JSON summary, and reading a refusal as the client raises it.
Imported from the scripts' own folder, which Python puts first on the import path.
"""

import json
import sys


def refusal(call, error) -> tuple[int, object]:
    """The status and body of the `error` (the client's API error class) that `call` raises."""
    try:
        call()
    except error as e:
        return e.status_code, e.body
    raise AssertionError("the fake did not refuse")


def run(drive) -> None:
    """Prints, as JSON, the summary `drive(base, key)` returns for the fake's base URL and key
    given on the command line."""
    base, key = sys.argv[1], sys.argv[2]
    print(json.dumps(drive(base, key)))
