"""Drives a Replicate API with the official `replicate` client, unchanged but for its base URL
and token: create (by model name and by version), poll until done, read outputs, `run` with
`Prefer: wait`, webhooks checked with the library's own validator, listing with its cursor,
cancel, and the errors a client sees (401, 429).

    python replicate_client.py BASE_URL TOKEN

tests/providers_replicate.rs runs it against the fake Replicate (tests/fakes/replicate.rs),
which allows six creates a minute here. Prints "all checks passed" and exits 0, or fails.
"""

import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import replicate
from replicate.exceptions import ReplicateError
from replicate.webhook import InvalidSignatureError, Webhooks

WHISPER = "8099696689d249cf8b122d833c36ac3f75505c666a395ca40ef26f68e7d3d16e"

base_url, token = sys.argv[1], sys.argv[2]
client = replicate.Client(api_token=token, base_url=base_url)


def check(condition, what):
    if not condition:
        raise SystemExit(f"check failed: {what}")


# A webhook receiver, as a client application would run one.
received = queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        received.put(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
hook = f"http://127.0.0.1:{receiver.server_port}/hooks/replicate?token=abc"

# An official model, by name, with a webhook; polled until done.
video = client.models.predictions.create(
    model="bytedance/seedance-1-pro",
    input={"prompt": "a fox in the snow", "duration": 5, "aspect_ratio": "16:9"},
    webhook=hook,
    webhook_events_filter=["completed"],
)
check(video.status == "starting", f"a new prediction starts: {video.status}")
check(video.urls["get"].endswith(f"/v1/predictions/{video.id}"), video.urls)
video.wait()
check(video.status == "succeeded", f"video: {video.status} {video.error}")
check(isinstance(video.output, str) and video.output.endswith(".mp4"), video.output)
mp4 = httpx.get(video.output).content
check(mp4[4:8] == b"ftyp", "the output is an MP4")
check(video.metrics and video.metrics["predict_time"] > 0, video.metrics)

# Its webhook, checked with the library's validator and the account's secret.
headers, body = received.get(timeout=10)
secret = client.webhooks.default.secret()
check(secret.key.startswith("whsec_"), "a whsec_ secret")
Webhooks.validate(headers=headers, body=body.decode(), secret=secret, tolerance=300)
hooked = json.loads(body)
check(hooked["id"] == video.id and hooked["status"] == "succeeded", hooked)
check(hooked["output"] == video.output, "the webhook carries the output")
try:
    Webhooks.validate(headers=headers, body=body.decode().replace("succeeded", "failed"), secret=secret)
    check(False, "a tampered body verifies")
except InvalidSignatureError:
    pass

# A community model, by version; its output is an object.
words = client.predictions.create(version=WHISPER, input={"audio": "https://example.com/talk.mp3"})
words = client.predictions.get(words.id)
words.wait()
check(words.status == "succeeded", f"whisper: {words.status}")
check(words.output["transcription"].strip() == "Hello from the fake.", words.output)
check(words.version == WHISPER, words.version)

# `run` holds the create open (`Prefer: wait`); an image model answers a list of URLs.
images = client.run("google/nano-banana", input={"prompt": "a cat", "aspect_ratio": "1:1"})
check(isinstance(images, list) and len(images) == 1, images)
png = httpx.get(str(images[0])).content
check(png[:8] == b"\x89PNG\r\n\x1a\n", "the output is a PNG")

# Cancel.
doomed = client.models.predictions.create(model="minimax/video-01", input={"prompt": "never mind"})
doomed.cancel()
doomed.reload()
check(doomed.status == "canceled", f"cancelled: {doomed.status}")

# Listing, newest first, a page at a time.
first = client.predictions.list()
check(len(first.results) == 2 and first.next, "a first page and a cursor")
check(first.results[0].id == doomed.id, "newest first")
second = client.predictions.list(first.next)
check(not {p.id for p in first} & {p.id for p in second}, "pages do not overlap")

# A bad model input is the client's fault.
try:
    client.models.predictions.create(model="minimax/video-01", input={})
    check(False, "an input without a prompt is accepted")
except ReplicateError as e:
    check(e.status == 422, f"invalid input: {e.status}")

# A wrong token.
try:
    replicate.Client(api_token="r8_wrong", base_url=base_url).predictions.get(video.id)
    check(False, "a wrong token is accepted")
except ReplicateError as e:
    check(e.status == 401, f"wrong token: {e.status}")

# Over the create limit: a 429 the client surfaces.
throttled = None
for _ in range(5):
    try:
        client.models.predictions.create(model="minimax/video-01", input={"prompt": "again"})
    except ReplicateError as e:
        throttled = e
        break
check(throttled is not None and throttled.status == 429, "the create limit answers 429")
check(throttled.detail.startswith("Request was throttled"), throttled.detail)

receiver.shutdown()
print("all checks passed")
