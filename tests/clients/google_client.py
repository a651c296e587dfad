"""Drives the fake Google Veo (tests/fakes/google.rs) with Google's official client,
google-genai, unchanged but for its base URL and credentials: the Gemini API with an API
key, and Vertex AI with a service account whose JWT google-auth signs. Exits non-zero on
the first thing the fake answers differently from what the client expects.

usage: google_client.py BASE_URL API_KEY SERVICE_ACCOUNT_JSON_PATH PNG_PATH
"""

import json
import sys
import time
from urllib.parse import quote

from google import genai
from google.auth.transport.requests import AuthorizedSession
from google.genai import errors, types
from google.oauth2 import service_account

base, api_key, account_path, png_path = sys.argv[1:5]
png = open(png_path, "rb").read()
GEMINI_MODEL = "veo-3.1-generate-preview"
VERTEX_MODEL = "veo-3.1-generate-001"


def done(client, operation):
    """Polls the operation as the SDK's docs do, quicker (the fake's time is compressed)."""
    for _ in range(400):
        if operation.done:
            return operation
        time.sleep(0.05)
        operation = client.operations.get(operation)
    raise SystemExit(f"{operation.name} never finished")


def is_mp4(data):
    return data is not None and data[4:8] == b"ftyp"


# The Gemini API: an API key, a file URI read with it.
gemini = genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=base))
operation = gemini.models.generate_videos(
    model=GEMINI_MODEL,
    source=types.GenerateVideosSource(
        prompt="a fox in the snow",
        image=types.Image(image_bytes=png, mime_type="image/png"),
    ),
    config=types.GenerateVideosConfig(
        aspect_ratio="16:9",
        duration_seconds=8,
        resolution="720p",
        negative_prompt="blurry",
        person_generation="allow_adult",
        number_of_videos=1,
    ),
)
assert operation.name.startswith(f"models/{GEMINI_MODEL}/operations/"), operation.name
operation = done(gemini, operation)
assert operation.error is None, operation.error
video = operation.result.generated_videos[0].video
# The SDK reads a file's id out of https:// URIs only, and the fake is plain http: name it.
file_id = video.uri.split("/files/")[1].split(":")[0]
assert is_mp4(gemini.files.download(file=f"files/{file_id}")), "the file is not an MP4"

filtered = done(
    gemini,
    gemini.models.generate_videos(model=GEMINI_MODEL, source=types.GenerateVideosSource(prompt="a forbidden scene")),
)
assert filtered.result.rai_media_filtered_count == 1, filtered.result
assert filtered.result.rai_media_filtered_reasons, filtered.result
assert not filtered.result.generated_videos

try:
    gemini.models.generate_videos(
        model=GEMINI_MODEL,
        source=types.GenerateVideosSource(prompt="square"),
        config=types.GenerateVideosConfig(aspect_ratio="4:3"),
    )
    raise SystemExit("an unsupported aspect ratio was accepted")
except errors.ClientError as e:
    assert e.code == 400 and e.status == "INVALID_ARGUMENT", e

# The SDK has no public cancel for operations; its own transport sends Google's `:cancel`.
slow = gemini.models.generate_videos(model=GEMINI_MODEL, source=types.GenerateVideosSource(prompt="a slow sunset"))
gemini._api_client.request("post", f"{slow.name}:cancel", {})
slow = done(gemini, slow)
assert slow.error and slow.error["code"] == 1, slow.error

# Vertex AI: google-auth signs the service account's JWT at the fake's token endpoint.
info = json.load(open(account_path))
credentials = service_account.Credentials.from_service_account_info(
    info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
)
vertex = genai.Client(
    vertexai=True,
    project=info["project_id"],
    location="us-central1",
    credentials=credentials,
    http_options=types.HttpOptions(base_url=base, api_version="v1"),
)
inline = done(
    vertex,
    vertex.models.generate_videos(
        model=VERTEX_MODEL,
        source=types.GenerateVideosSource(prompt="a heron"),
        config=types.GenerateVideosConfig(seed=7, generate_audio=True, duration_seconds=4),
    ),
)
assert is_mp4(inline.result.generated_videos[0].video.video_bytes), "no inline MP4"

stored = done(
    vertex,
    vertex.models.generate_videos(
        model=VERTEX_MODEL,
        source=types.GenerateVideosSource(prompt="a heron, stored"),
        config=types.GenerateVideosConfig(output_gcs_uri="gs://reelay-out/sdk/"),
    ),
)
uri = stored.result.generated_videos[0].video.uri
assert uri.startswith("gs://reelay-out/sdk/"), uri
bucket, name = uri[len("gs://") :].split("/", 1)
media = AuthorizedSession(credentials).get(
    f"{base}/storage/v1/b/{bucket}/o/{quote(name, safe='')}", params={"alt": "media"}
)
media.raise_for_status()
assert is_mp4(media.content), "the gs:// object is not an MP4"
print(json.dumps({"ok": True}))
