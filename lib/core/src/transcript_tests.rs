use serde_json::json;

use super::*;

fn words(t: &Transcript) -> Vec<(&str, f64, f64)> {
    t.words.iter().map(|w| (w.word.as_str(), w.start, w.end)).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_canonical_shape_reads_back_as_it_is() {
    let canonical = Transcript {
        language: Some("en".into()),
        text: "hello world".into(),
        words: vec![
            TimedWord {
                word: "hello".into(),
                start: 0.1,
                end: 0.5,
            },
            TimedWord {
                word: "world".into(),
                start: 0.6,
                end: 1.0,
            },
        ],
        segments: vec![Segment {
            start: 0.1,
            end: 1.0,
            text: "hello world".into(),
        }],
    };
    let raw = serde_json::to_string(&canonical).unwrap();
    assert_eq!(normalise(&raw).unwrap(), canonical);
}

#[test]
fn whisper_segments_with_words_keep_their_words() {
    let t = from_value(&json!({
        "detected_language": "english",
        "transcription": "Hi there.",
        "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": " Hi there.",
            "words": [{"word": " Hi", "start": 0.0, "end": 0.4, "probability": 0.9},
                      {"word": " there.", "start": 0.5, "end": 1.0, "probability": 0.8}]}]
    }))
    .unwrap();
    assert_eq!(words(&t), vec![("Hi", 0.0, 0.4), ("there.", 0.5, 1.0)]);
    assert_eq!(t.language.as_deref(), Some("english"));
    assert_eq!(t.text, "Hi there.");
    assert_eq!(t.segments.len(), 1);
}

#[test]
fn segments_alone_spread_their_time_over_words_by_length() {
    let t = from_value(&json!({"segments": [
        {"start": 1.0, "end": 2.0, "text": " a bbb"},
        {"start": 3.0, "end": 3.5, "text": "cc"}
    ]}))
    .unwrap();
    let w = words(&t);
    assert_eq!(w.len(), 3);
    assert!(close(w[0].1, 1.0) && close(w[0].2, 1.25), "{w:?}");
    assert!(close(w[1].1, 1.25) && close(w[1].2, 2.0), "{w:?}");
    assert_eq!(w[2], ("cc", 3.0, 3.5));
    assert_eq!(t.text, "a bbb cc");
}

#[test]
fn fast_whisper_chunks_are_words_or_phrases() {
    let t = from_value(&json!({"text": " Hello you", "chunks": [
        {"timestamp": [0.0, 0.5], "text": " Hello"},
        {"timestamp": [0.6, null], "text": " you"}
    ]}))
    .unwrap();
    assert_eq!(words(&t), vec![("Hello", 0.0, 0.5), ("you", 0.6, 0.6)]);
    assert_eq!(t.text, "Hello you");
    let t = from_value(&json!({"chunks": [{"timestamp": [0.0, 2.0], "text": "one two"}]})).unwrap();
    assert_eq!(words(&t), vec![("one", 0.0, 1.0), ("two", 1.0, 2.0)]);
    assert_eq!(t.segments[0].text, "one two");
}

#[test]
fn a_bare_list_of_words_forms_sentences() {
    let t = normalise(
        r#"[{"word":"Go.","start":0,"end":0.3},{"word":"Now","start":0.4,"end":0.6},
        {"word":"then","start":0.7,"end":0.9},{"word":"later","start":3.0,"end":3.2}]"#,
    )
    .unwrap();
    let segments: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(segments, vec!["Go.", "Now then", "later"]);
    assert_eq!(t.text, "Go. Now then later");
}

const SRT: &str =
    "1\n00:00:01,000 --> 00:00:02,000\nHello <i>big</i>\nworld\n\n2\n00:01:00,500 --> 00:01:01,500\nagain\n";

#[test]
fn srt_cues_become_segments() {
    let t = normalise(SRT).unwrap();
    assert_eq!(t.segments.len(), 2);
    assert_eq!(t.segments[0].text, "Hello big world");
    assert_eq!((t.segments[1].start, t.segments[1].end), (60.5, 61.5));
    assert_eq!(t.words.len(), 4);
    assert_eq!(t.words[3].word, "again");
    // Whisper's `transcription` may be SRT too.
    assert_eq!(from_value(&json!({"transcription": SRT})).unwrap(), t);
}

#[test]
fn webvtt_with_settings_notes_and_tags() {
    let vtt = "WEBVTT\n\nNOTE made by hand\n\ncue-1\n00:00.500 --> 00:01.500 align:start\n<v Ann>Hi <00:00:01.000>there\n\n01:00:00.000 --> 01:00:01.000\nlate\n";
    let t = normalise(vtt).unwrap();
    let got: Vec<(f64, f64, &str)> = t.segments.iter().map(|s| (s.start, s.end, s.text.as_str())).collect();
    assert_eq!(got, vec![(0.5, 1.5, "Hi there"), (3600.0, 3601.0, "late")]);
    assert_eq!(t.words[0].word, "Hi");
    // Text chunks (a streamed text output) join before they are read.
    assert_eq!(
        from_value(&json!([
            "WEBVTT\n\n00:00.500 --> 00:01.500 ",
            "align:start\nHi there\n"
        ]))
        .unwrap()
        .segments[0]
            .text,
        "Hi there"
    );
}

#[test]
fn what_is_no_transcript_is_refused() {
    assert!(matches!(
        normalise("just words, no times"),
        Err(TranscriptError::Unrecognised(_))
    ));
    assert!(matches!(normalise("42"), Err(TranscriptError::Unrecognised(_))));
    assert!(matches!(
        normalise(r#"{"output": 1}"#),
        Err(TranscriptError::Unrecognised(_))
    ));
    assert_eq!(
        normalise("00:00:xx,000 --> 00:00:01,000\nhi"),
        Err(TranscriptError::BadTiming("00:00:xx,000".into()))
    );
    assert_eq!(normalise("").unwrap(), Transcript::default());
}

#[test]
fn every_json_shape_gives_the_same_words() {
    let expected = [("hi", 0.0, 0.5), ("there", 0.5, 1.0)];
    for shape in [
        r#"[{"word":"hi","start":0,"end":0.5},{"word":"there","start":0.5,"end":1}]"#,
        r#"{"language":"en","text":"hi there","words":[{"word":"hi","start":0,"end":0.5},{"word":"there","start":0.5,"end":1}],"segments":[]}"#,
        r#"{"segments":[{"start":0,"end":1,"text":"hi there","words":[{"word":" hi","start":0,"end":0.5},{"word":" there","start":0.5,"end":1}]}]}"#,
        r#"{"chunks":[{"text":" hi","timestamp":[0,0.5]},{"text":" there","timestamp":[0.5,1]}]}"#,
        // The speech providers' tag on their audio.
        r#"{"transcript":[{"word":"hi","start":0,"end":0.5},{"word":"there","start":0.5,"end":1}]}"#,
    ] {
        let t = normalise(shape).unwrap();
        assert_eq!(words(&t), expected, "{shape}");
    }
}
