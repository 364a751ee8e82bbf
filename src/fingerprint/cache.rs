//! The hash cache: a file's content hash, kept while its metadata says it has not changed,
//! so 20,000 unchanged inputs cost 20,000 `stat`s instead of reading them all.
//!
//! It lives in one file beside the history database (`history.db-hashes`), keyed by
//! absolute path, and holds the file's size, modification and change times (to the
//! nanosecond), inode and device with its hash. An entry is used only when all of them
//! are equal, so a rewrite, a `touch`, a rename over the file or a `chmod` all mean
//! rehashing.
//!
//! Invariant: the cache never makes a changed file look unchanged. The risk is a change
//! that leaves the metadata equal: a write in the same timestamp tick as the write the
//! hash was taken after (git's "racy clean" problem; file systems keep times in ticks of
//! up to 2 s). So a hash is kept only for a file whose modification and change times are
//! at least [`RACY`] older than the moment its metadata was read: any later write then
//! lands in a later tick and changes them. A file changed more recently is simply hashed
//! each time until it has been quiet that long.
//!
//! The file is a cache, never a record: missing, unreadable, damaged (its checksum does
//! not match) or from another version, it is ignored, and deleting it is always safe. It
//! is written whole to a temporary file and renamed into place, so readers see an old or
//! a new cache, never half of one; of two processes saving at once, the last one wins.
//! Entries unused for [`KEEP_DAYS`] days are dropped when it is saved.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Hash;

/// How long a file must have been left alone before its hash is kept.
pub const RACY: Duration = Duration::from_secs(2);

/// Entries not used for this many days are dropped when the cache is saved.
const KEEP_DAYS: u32 = 30;

/// The first bytes of a cache file; a new layout gets a new magic.
const MAGIC: &[u8; 8] = b"exehash1";

/// Bytes of an entry after its path: size, mtime, ctime, inode, device, day, hash.
const ENTRY_TAIL: usize = 8 * 5 + 4 + 32;

/// What decides whether a file changed, as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |secs: i64, nanos: i64| secs.saturating_mul(1_000_000_000).saturating_add(nanos);
        Stamp {
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// Would any write after `read_at_ns` (when this stamp was read) change the stamp?
    /// Only if the file's last change is at least [`RACY`] older than that moment.
    pub fn settled(&self, read_at_ns: i64) -> bool {
        let racy = i64::try_from(RACY.as_nanos()).unwrap_or(i64::MAX);
        self.mtime_ns.max(self.ctime_ns) < read_at_ns.saturating_sub(racy)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    stamp: Stamp,
    /// Days since the epoch when it was last used.
    day: u32,
    hash: Hash,
}

/// Content hashes by path and [`Stamp`]; see the module docs.
#[derive(Debug, Default)]
pub struct Cache {
    /// By path bytes: hashing and comparing a `PathBuf` parses its components.
    entries: HashMap<OsString, Entry>,
    /// Set when an entry was added, replaced or dropped, or first used today.
    changed: bool,
    today: u32,
}

impl Cache {
    /// The cache file of the history database `db`.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push("-hashes");
        PathBuf::from(name)
    }

    /// The cache in `file`; empty when it is missing or cannot be trusted.
    pub fn load(file: &Path) -> Cache {
        let today = day(SystemTime::now());
        let entries = std::fs::read(file)
            .ok()
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        Cache {
            entries,
            changed: false,
            today,
        }
    }

    /// The content hash of the file at `path` (absolute), from the cache when its stamp
    /// is unchanged, otherwise read and hashed (and kept if the file has [`Stamp::settled`]).
    pub fn hash(&mut self, path: &Path) -> std::io::Result<Hash> {
        let read_at = nanos(SystemTime::now());
        let meta = std::fs::metadata(path)?;
        let stamp = Stamp::of(&meta);
        if let Some(entry) = self.entries.get_mut(path.as_os_str())
            && entry.stamp == stamp
        {
            if entry.day != self.today {
                entry.day = self.today;
                self.changed = true;
            }
            return Ok(entry.hash);
        }
        let hash = hash_file(path)?;
        if stamp.settled(read_at) {
            let entry = Entry {
                stamp,
                day: self.today,
                hash,
            };
            self.entries.insert(path.as_os_str().to_owned(), entry);
            self.changed = true;
        } else if self.entries.remove(path.as_os_str()).is_some() {
            self.changed = true;
        }
        Ok(hash)
    }

    /// Writes the cache to `file` if anything changed since it was loaded.
    pub fn save(&mut self, file: &Path) -> std::io::Result<()> {
        if !self.changed {
            return Ok(());
        }
        let oldest = self.today.saturating_sub(KEEP_DAYS);
        self.entries.retain(|_, e| e.day >= oldest);
        let bytes = encode(&self.entries);
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, file))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
        self.changed = false;
        Ok(())
    }
}

/// The BLAKE3 hash of a file's content, read in 64 KiB pieces.
fn hash_file(path: &Path) -> std::io::Result<Hash> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn day(t: SystemTime) -> u32 {
    let days = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    u32::try_from(days).unwrap_or(u32::MAX)
}

/// `MAGIC`, then per entry: path length (u32), path bytes, size, mtime, ctime, inode,
/// device (8 bytes each), day (4), hash (32); all little-endian; then a BLAKE3 checksum of
/// everything before it.
fn encode(entries: &HashMap<OsString, Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * (ENTRY_TAIL + 64) + 32);
    out.extend_from_slice(MAGIC);
    for (path, e) in entries {
        let bytes = path.as_bytes();
        let Ok(len) = u32::try_from(bytes.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(&e.stamp.size.to_le_bytes());
        out.extend_from_slice(&e.stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stamp.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.stamp.ino.to_le_bytes());
        out.extend_from_slice(&e.stamp.dev.to_le_bytes());
        out.extend_from_slice(&e.day.to_le_bytes());
        out.extend_from_slice(&e.hash);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The entries of an [`encode`]d cache; `None` if anything about it is off.
fn decode(bytes: &[u8]) -> Option<HashMap<OsString, Entry>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut rest = body.strip_prefix(MAGIC.as_slice())?;
    let mut entries = HashMap::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let (path, tail) = tail.split_at_checked(len)?;
        let (fields, tail) = tail.split_at_checked(ENTRY_TAIL)?;
        let u64_at = |i: usize| u64::from_le_bytes(fields[i..i + 8].try_into().unwrap_or_default());
        let i64_at = |i: usize| i64::from_le_bytes(fields[i..i + 8].try_into().unwrap_or_default());
        let entry = Entry {
            stamp: Stamp {
                size: u64_at(0),
                mtime_ns: i64_at(8),
                ctime_ns: i64_at(16),
                ino: u64_at(24),
                dev: u64_at(32),
            },
            day: u32::from_le_bytes(fields[40..44].try_into().ok()?),
            hash: fields[44..76].try_into().ok()?,
        };
        entries.insert(OsStr::from_bytes(path).to_owned(), entry);
        rest = tail;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn stamp(mtime_ns: i64, ctime_ns: i64) -> Stamp {
        Stamp {
            size: 1,
            mtime_ns,
            ctime_ns,
            ino: 1,
            dev: 1,
        }
    }

    #[test]
    fn only_files_quiet_for_the_racy_window_are_settled() {
        let read_at = 100 * SECOND;
        assert!(stamp(97 * SECOND, 97 * SECOND).settled(read_at));
        // Changed within the window: a write in the same tick could leave it equal.
        assert!(!stamp(99 * SECOND, 99 * SECOND).settled(read_at));
        assert!(
            !stamp(98 * SECOND, 98 * SECOND).settled(read_at),
            "exactly 2 s is racy"
        );
        // An old mtime set back by `touch -d` or `cp -p` still has a fresh ctime.
        assert!(!stamp(10 * SECOND, 99 * SECOND).settled(read_at));
        // A clock that went back: nothing is settled.
        assert!(!stamp(200 * SECOND, 200 * SECOND).settled(read_at));
    }

    #[test]
    fn entries_round_trip_and_damage_empties_the_cache() {
        let mut entries = HashMap::new();
        for (i, name) in ["/a/b.sql", "/weird \n name", "/x"].iter().enumerate() {
            let n = i64::try_from(i).unwrap();
            entries.insert(
                OsString::from(name),
                Entry {
                    stamp: stamp(n * SECOND, n * SECOND + 5),
                    day: 20_000,
                    hash: [u8::try_from(i).unwrap(); 32],
                },
            );
        }
        let bytes = encode(&entries);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        let e = back[OsStr::new("/weird \n name")];
        assert_eq!(
            (e.stamp, e.day, e.hash),
            (stamp(SECOND, SECOND + 5), 20_000, [1; 32])
        );
        for cut in [0, 7, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped).is_none());
        assert!(decode(&encode(&HashMap::new())).unwrap().is_empty());
    }

    #[test]
    fn a_settled_file_is_served_from_the_cache_until_its_stamp_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.txt");
        std::fs::write(&file, "one").unwrap();
        let mut cache = Cache::load(&dir.path().join("no-cache-yet"));
        let first = cache.hash(&file).unwrap();
        assert_eq!(first, *blake3::hash(b"one").as_bytes());
        // Just written: racy, so not kept.
        assert!(cache.entries.is_empty());

        // Pretend it was hashed long after its last change: kept, and served from the cache.
        let meta = std::fs::metadata(&file).unwrap();
        let entry = Entry {
            stamp: Stamp::of(&meta),
            day: 0,
            hash: [7; 32],
        };
        cache.entries.insert(file.clone().into_os_string(), entry);
        assert_eq!(cache.hash(&file).unwrap(), [7; 32], "served from the cache");
        assert!(cache.changed, "used today: the day is updated");

        // New content: the stamp moves, so it is hashed again. (A different size, so the
        // test does not depend on the clock ticking between the two writes.)
        std::fs::write(&file, "second").unwrap();
        assert_eq!(
            cache.hash(&file).unwrap(),
            *blake3::hash(b"second").as_bytes()
        );
        assert!(
            !cache.entries.contains_key(file.as_os_str()),
            "a racy entry is dropped"
        );
    }

    #[test]
    fn save_and_load_keep_recent_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = Cache::path_for(&dir.path().join("history.db"));
        assert!(path.ends_with("history.db-hashes"));
        let mut cache = Cache::load(&path);
        assert!(cache.entries.is_empty());
        let today = cache.today;
        for (name, day) in [("/new", today), ("/old", today - KEEP_DAYS - 1)] {
            cache.entries.insert(
                OsString::from(name),
                Entry {
                    stamp: stamp(1, 1),
                    day,
                    hash: [0; 32],
                },
            );
        }
        cache.changed = true;
        cache.save(&path).unwrap();
        assert!(!cache.changed);
        let again = Cache::load(&path);
        assert_eq!(
            again.entries.keys().collect::<Vec<_>>(),
            [Path::new("/new")]
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(Cache::load(&path).entries.is_empty());
    }
}
