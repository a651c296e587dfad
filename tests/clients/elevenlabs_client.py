"""Drives the ElevenLabs fake with the official `elevenlabs` package, unchanged but for its base URL.

Usage: elevenlabs_client.py <fake base URL> <key>

Speaks with `text_to_speech.convert` (MP3 bytes) and `convert_with_timestamps` (base64 PCM
with a character alignment), then reads the fake's refusals as the client raises them: a
bad key (401), an unknown model (400), voice settings out of range (422). Prints a JSON
summary; any surprise raises, so the exit code is the verdict.
"""

import base64

from elevenlabs import VoiceSettings
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

from fake_common import refusal, run

VOICE = "21m00Tcm4TlvDq8ikWAM"


def drive(base: str, key: str) -> dict:
    client = ElevenLabs(api_key=key, base_url=base)

    mp3 = b"".join(client.text_to_speech.convert(
        voice_id=VOICE,
        text="Hello from the fake.",
        model_id="eleven_multilingual_v2",
        output_format="mp3_44100_128",
        voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.75, style=0.0, use_speaker_boost=True),
        language_code="en",
        previous_text="Before.",
        next_text="After.",
    ))
    assert mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0, "the audio is not an MP3 frame"

    text = "Two words"
    timed = client.text_to_speech.convert_with_timestamps(
        voice_id=VOICE, text=text, model_id="eleven_turbo_v2_5", output_format="pcm_16000",
    )
    pcm = base64.b64decode(timed.audio_base_64)
    alignment = timed.alignment
    assert "".join(alignment.characters) == text, alignment
    assert len(alignment.character_start_times_seconds) == len(text)
    assert len(pcm) % 2 == 0 and len(pcm) > 16000, len(pcm)

    bad_key = ElevenLabs(api_key="not-a-key", base_url=base)
    unauthorized = refusal(lambda: b"".join(bad_key.text_to_speech.convert(voice_id=VOICE, text="x")), ApiError)
    unknown_model = refusal(lambda: client.text_to_speech.convert_with_timestamps(
        voice_id=VOICE, text="x", model_id="eleven_nope"), ApiError)
    out_of_range = refusal(lambda: client.text_to_speech.convert_with_timestamps(
        voice_id=VOICE, text="x", voice_settings=VoiceSettings(stability=3.0)), ApiError)
    assert unauthorized[0] == 401 and out_of_range[0] == 422 and unknown_model[0] == 400, \
        (unauthorized, unknown_model, out_of_range)

    return {
        "mp3_bytes": len(mp3),
        "pcm_bytes": len(pcm),
        "characters": len(alignment.characters),
        "unauthorized": unauthorized[1],
        "unknown_model": unknown_model[1],
        "out_of_range": out_of_range[1],
    }


if __name__ == "__main__":
    run(drive)
