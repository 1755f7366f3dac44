//! Reading the node's runtime state files (`config.json`, `config.v2.json`,
//! `containers.json`, ...): written by runtimes, but holding what users and
//! images put there (names, labels, annotations), so untrusted.
use std::{fs, io::Read, os::unix::fs::OpenOptionsExt, path::Path};

use serde::de::DeserializeOwned;

/// A JSON file that is a regular file, not a symlink (O_NOFOLLOW on the
/// last component, as the runtimes write them), of at most `max_bytes`;
/// None for anything else or JSON that is not a `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path, max_bytes: u64) -> Option<T> {
    serde_json::from_slice::<T>(&read_bytes(path, max_bytes)?).ok()
}

/// A regular file's bytes (not through a symlink), at most `max_bytes`;
/// None for anything else.
pub fn read_bytes(path: &Path, max_bytes: u64) -> Option<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max_bytes {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max_bytes).then_some(bytes)
}

/// The modification time of a file (not following a symlink), to re-read
/// a runtime's index only when it changed.
pub fn modified(path: &Path) -> Option<std::time::SystemTime> {
    let meta = fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| meta.modified().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_large_files_and_bad_json_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        fs::write(&good, r#"{"a":1}"#).unwrap();
        let value: Option<serde_json::Value> = read_json(&good, 100);
        assert_eq!(value.unwrap()["a"], 1);
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(read_json::<serde_json::Value>(&link, 100).is_none());
        assert!(read_json::<serde_json::Value>(&good, 3).is_none());
        fs::write(&good, "{").unwrap();
        assert!(read_json::<serde_json::Value>(&good, 100).is_none());
    }
}
