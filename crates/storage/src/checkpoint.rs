//! Small files replaced atomically: write a temporary file, fsync it, rename it over the old
//! one, fsync the directory. A crash leaves either the old or the new content, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a checkpoint holding one decimal i64; `None` when absent or unreadable (the caller
/// falls back to the safe default, e.g. recovering from the start).
pub(crate) fn read_i64(path: &Path) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(crate) fn write_i64(path: &Path, value: i64) -> std::io::Result<()> {
    write_atomically(path, format!("{value}\n").as_bytes())
}
