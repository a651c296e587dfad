//! A node's scratch folder (`<work dir>/scratch`): ffmpeg's task folders and the Manim
//! sandbox's check and render folders. A finished or failed task removes its own; a process
//! killed mid-task (`kill -9`, a Lambda timeout or out-of-memory end) leaves its folder, which
//! [`clear_scratch`] removes when the next process on that folder starts.

use std::path::{Path, PathBuf};

/// The scratch folder of a node working in `work_dir`.
pub fn scratch_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("scratch")
}

/// Empties `work_dir`'s scratch folder. Call it only before this process starts any media
/// work, and only where no other process shares the folder (the embedded node holds its data
/// folder's lock; a Lambda execution environment runs one invocation at a time and its `/tmp`
/// is its own, but outlives a crashed runtime). Returns how many entries were removed.
pub fn clear_scratch(work_dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(scratch_dir(work_dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let gone = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_left_in_scratch_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = scratch_dir(dir.path());
        // As a `kill -9` leaves them: an ffmpeg task folder, a scene render's, a stray file.
        for folder in ["task-Ab12Cd", "render-Xy34Zw/media/videos"] {
            std::fs::create_dir_all(scratch.join(folder)).unwrap();
            std::fs::write(scratch.join(folder).join("partial.mp4"), b"half a movie").unwrap();
        }
        std::fs::write(scratch.join("stray"), b"").unwrap();
        std::fs::write(dir.path().join("kept"), b"not scratch").unwrap();
        assert_eq!(clear_scratch(dir.path()).unwrap(), 3);
        assert!(scratch.exists());
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "scratch was emptied");
        assert!(dir.path().join("kept").exists());
        // Nothing there, or no folder at all: nothing to do.
        assert_eq!(clear_scratch(dir.path()).unwrap(), 0);
        assert_eq!(clear_scratch(&dir.path().join("absent")).unwrap(), 0);
    }
}
