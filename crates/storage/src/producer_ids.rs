//! Producer ids a data directory handed out before the metadata log kept them. A single node
//! from before the controller quorum allocated ids itself, in blocks, and wrote the end of the
//! current block (atomically, fsynced) before giving out any id of it. The cluster's active
//! controller now hands out producer-id blocks; a node taking such a directory over reserves
//! every id below this floor first, so no id given out before is given again.
//!
//! File `<data_dir>/producer-id-block`: one decimal number, the first id the directory never
//! handed out. Nothing writes it any more.

use crate::checkpoint;
use std::path::Path;

const BLOCK_FILE: &str = "producer-id-block";

/// The first producer id `data_dir` never handed out (0 for a directory that handed none).
pub(crate) fn legacy_floor(data_dir: &Path) -> i64 {
    checkpoint::read_i64(&data_dir.join(BLOCK_FILE))
        .unwrap_or(0)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_file_or_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(legacy_floor(dir.path()), 0);
        checkpoint::write_i64(&dir.path().join(BLOCK_FILE), 2_000).unwrap();
        assert_eq!(legacy_floor(dir.path()), 2_000);
    }
}
