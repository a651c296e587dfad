//! `fast_start`: a video re-packed so that it streams, its index (`moov`) before its media
//! data (`mdat`), the streams copied as they are. A rendered scene goes through it on its way
//! to the blob store, since players fetch the index before the first frame.

use std::ffi::OsString;
use std::path::Path;

use crate::ffmpeg::{ffmpeg, file_arg, TempFile};
use crate::{probe, FfmpegError};

/// Re-packs `input` (a video) as the MP4 `out`, `moov` first; its video and audio streams are
/// copied, not re-encoded. Anything but a video is `Invalid`.
pub async fn fast_start(input: &Path, out: &Path) -> Result<(), FfmpegError> {
    let probed = probe(input)
        .await
        .map_err(|e| FfmpegError::Invalid(format!("the input to re-pack is not a video: {e}")))?;
    if probed.width.is_none() {
        return Err(FfmpegError::Invalid("the input to re-pack has no video stream".into()));
    }
    let tmp = TempFile::beside(out, "")?;
    let args: Vec<OsString> = [
        "-i".into(),
        file_arg(input),
        "-map".into(),
        "0:v".into(),
        "-map".into(),
        "0:a?".into(),
        "-c".into(),
        "copy".into(),
        "-movflags".into(),
        "+faststart".into(),
        "-f".into(),
        "mp4".into(),
        file_arg(tmp.path()),
    ]
    .into();
    ffmpeg(args).await?;
    tmp.persist(out).await
}
