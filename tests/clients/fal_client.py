"""Drives the fal fake with the official `fal-client` package, unchanged but for its base URL.

Usage: fal_client.py <fake base URL> <key> <webhook URL>

Submits with a webhook, follows the queue events until done, reads the result by the
handle (the URLs the submit answered) and by request id (the URLs the client builds),
downloads the output, reads a failed request's 422, and cancels a running request. Prints a
JSON summary; any surprise raises, so the exit code is the verdict. fal-client has no
webhook verification: the Rust test checks the webhook the fake sent with reelay's verifier.
"""

import json
import os
import sys

# This file is named like the package: keep its folder off the import path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import fal_client  # noqa: E402
import fal_client.client  # noqa: E402
import httpx  # noqa: E402

APP = "fal-ai/kling-video"
MODEL = APP + "/v2.1/master/text-to-video"


def main() -> None:
    base, key, webhook_url = sys.argv[1], sys.argv[2], sys.argv[3]
    # The queue host is fixed to https://queue.fal.run (FAL_QUEUE_RUN_HOST changes the host
    # but not the scheme); the fake serves plain HTTP on loopback.
    fal_client.client.QUEUE_URL_FORMAT = base.rstrip("/") + "/"
    client = fal_client.SyncClient(key=key)

    handle = client.submit(MODEL, {"prompt": "a fox", "duration": "5"}, webhook_url=webhook_url)
    events = []
    for event in handle.iter_events(with_logs=True, interval=0.05):
        events.append(type(event).__name__)
    assert events[-1] == "Completed", events
    assert "InProgress" in events, events

    result = handle.get()
    video = result["video"]
    assert video["content_type"] == "video/mp4", result
    media = httpx.get(video["url"])
    media.raise_for_status()
    assert media.content[4:8] == b"ftyp", "the output is not an MP4"
    assert len(media.content) == video["file_size"], (len(media.content), video)

    by_id = client.status(APP, handle.request_id, with_logs=True)
    assert isinstance(by_id, fal_client.Completed), by_id
    assert by_id.error is None, by_id
    assert client.result(APP, handle.request_id) == result

    failing = client.submit(MODEL, {"prompt": "fail: this prompt is refused"})
    try:
        failing.get(interval=0.05)
        raise AssertionError("a refused prompt gave a result")
    except fal_client.FalClientHTTPError as e:
        assert e.status_code == 422, e
        refused = e.message
    failed_status = failing.status()
    assert isinstance(failed_status, fal_client.Completed) and failed_status.error, failed_status

    running = client.submit(MODEL, {"prompt": "stop me"})
    running.cancel()
    cancelled = client.status(APP, running.request_id)
    assert isinstance(cancelled, fal_client.Completed) and cancelled.error, cancelled

    print(json.dumps({
        "request_id": handle.request_id,
        "events": events,
        "refused": refused,
        "cancelled": running.request_id,
    }))


if __name__ == "__main__":
    main()
