"""Drives the Hume fake with the official `hume` package, unchanged but for its base URL.

Usage: hume_client.py <fake base URL> <key>

Speaks with `tts.synthesize_json` as Octave 2 with word timestamps (a WAV) and as Octave 1
(an MP3), then reads the fake's refusals as the client raises them: a bad key (401) and Octave
2 without a voice (400). Prints a JSON summary; any surprise raises, so the exit code is the
verdict.
"""

import base64

from hume import HumeClient
from hume.core.api_error import ApiError
from hume.tts import FormatMp3, FormatWav, PostedUtterance, PostedUtteranceVoiceWithName

from fake_common import refusal, run


def drive(base: str, key: str) -> dict:
    client = HumeClient(api_key=key, base_url=base)

    voice = PostedUtteranceVoiceWithName(name="Ava Song", provider="HUME_AI")
    timed = client.tts.synthesize_json(
        utterances=[PostedUtterance(text="Hello from the fake", description="calm", voice=voice,
                                    speed=1.1, trailing_silence=0.5)],
        format=FormatWav(),
        num_generations=1,
        version="2",
        include_timestamp_types=["word"],
    )
    generation = timed.generations[0]
    wav = base64.b64decode(generation.audio)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", wav[:12]
    assert generation.encoding.format == "wav", generation.encoding
    words = [t.text for s in generation.snippets[0] for t in s.timestamps if t.type == "word"]
    assert words == ["Hello", "from", "the", "fake"], words

    plain = client.tts.synthesize_json(
        utterances=[PostedUtterance(text="No timestamps here")], format=FormatMp3(), num_generations=2,
    )
    assert len(plain.generations) == 2
    mp3 = base64.b64decode(plain.generations[0].audio)
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF, mp3[:4]
    assert all(not s.timestamps for s in plain.generations[0].snippets[0])

    unauthorized = refusal(lambda: HumeClient(api_key="not-a-key", base_url=base).tts.synthesize_json(
        utterances=[PostedUtterance(text="x")]), ApiError)
    no_voice = refusal(lambda: client.tts.synthesize_json(utterances=[PostedUtterance(text="x")], version="2"), ApiError)
    assert unauthorized[0] == 401 and no_voice[0] == 400, (unauthorized, no_voice)

    return {
        "wav_bytes": len(wav),
        "words": words,
        "mp3_bytes": len(mp3),
        "unauthorized": unauthorized[1],
        "no_voice": no_voice[1],
    }


if __name__ == "__main__":
    run(drive)
