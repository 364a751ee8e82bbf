//! Reading a WAL database from a folder this user cannot write.
//!
//! In WAL mode `SQLite` reads through two files beside the database, `-wal` and `-shm`, and a
//! reader that can neither open nor create them fails even to read. exe keeps both when it
//! closes the database (no checkpoint on close), so they are usually there and a read-only
//! open works. A tool that checkpoints on close (the `sqlite3` shell, Python's `sqlite3`)
//! removes both: every committed page is then in the database file itself, and [`open`]
//! reads that file with `immutable=1`, without the WAL, the shared memory or locks. With a
//! `-wal` that holds commits but no usable `-shm`, the file alone would miss those commits,
//! so that is [`StoreError::WalUnreadable`], never a silently older history.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{StoreError, side_file};

/// Whether a read-only open failed because `SQLite` could not set up the WAL's side files
/// (`SQLITE_READONLY_DIRECTORY`, or `SQLITE_CANTOPEN` on the `-shm` file).
pub(super) fn needs_side_files(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen)
    )
}

/// Opens `path` read-only and `immutable`, if everything committed is in the file itself.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    if side_file(path, "-wal")
        .metadata()
        .is_ok_and(|m| m.len() > 0)
    {
        return Err(StoreError::WalUnreadable {
            path: path.to_path_buf(),
        });
    }
    Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The `SQLite` URI that opens `path` (absolute or relative) as immutable, every byte outside
/// the unreserved set percent-encoded (a `?`, `#` or `%` in a folder name stays a name).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            write!(uri, "%{byte:02X}").expect("writing to a String cannot fail");
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_sqlite_would_read_as_syntax() {
        assert_eq!(
            immutable_uri(Path::new("/tmp/a b/h?#%.db")),
            "file:/tmp/a%20b/h%3F%23%25.db?immutable=1"
        );
    }

    #[test]
    fn a_wal_with_commits_is_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("history.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::write(side_file(&db, "-wal"), b"frames").unwrap();
        assert!(matches!(
            open(&db),
            Err(StoreError::WalUnreadable { path }) if path == db
        ));
    }

    #[test]
    fn a_database_without_a_wal_opens_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("odd ?name#.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (7);",
            )
            .unwrap();
        // The last connection closed: checkpointed, -wal and -shm removed.
        assert!(!side_file(&db, "-wal").exists());
        let conn = open(&db).unwrap();
        let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
        assert!(
            !side_file(&db, "-shm").exists(),
            "an immutable read creates nothing"
        );
    }
}
