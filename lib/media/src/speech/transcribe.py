"""Offline speech recognition for reelay's `local` transcriber.

Reads 16 kHz mono 16-bit PCM (raw) from the file named by argv[1] and prints one JSON
transcript: {"language", "text", "words": [{"word", "start", "end"}], "segments": [...]}.
pocketsphinx ships its English model inside its package, so nothing is downloaded.
"""

import json
import sys

from pocketsphinx import Decoder

# A pause this long (seconds) between two words starts a new segment.
SEGMENT_GAP = 0.5


def main(path):
    decoder = Decoder(samprate=16000)
    with open(path, "rb") as audio:
        decoder.start_utt()
        decoder.process_raw(audio.read(), full_utt=True)
        decoder.end_utt()
    rate = decoder.config["frate"]
    words = []
    for seg in decoder.seg():
        # Silences, fillers and noise are not words; `word(2)` is an alternate pronunciation.
        if seg.word.startswith(("<", "[", "+")):
            continue
        words.append({
            "word": seg.word.split("(")[0],
            "start": round(seg.start_frame / rate, 3),
            "end": round((seg.end_frame + 1) / rate, 3),
        })
    segments = []
    for word in words:
        if segments and word["start"] - segments[-1]["end"] < SEGMENT_GAP:
            segments[-1]["end"] = word["end"]
            segments[-1]["text"] += " " + word["word"]
        else:
            segments.append(dict(start=word["start"], end=word["end"], text=word["word"]))
    print(json.dumps({
        "language": "en",
        "text": " ".join(w["word"] for w in words),
        "words": words,
        "segments": segments,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
