//! The file system watch: notify's watcher, kept in step with the folders the rules want,
//! and what its events and errors mean to exe.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::rules::Folder;

/// Why the file system could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The kernel's limit on inotify watches (`fs.inotify.max_user_watches`) was reached.
    #[error("cannot watch {path}: the system's limit on inotify watches is reached")]
    Limit {
        /// The folder that could not be watched.
        path: PathBuf,
    },
    /// Watching failed for another reason.
    #[error("cannot watch {path}: {reason}")]
    Failed {
        /// The folder that could not be watched.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
}

impl WatchError {
    /// How to fix it, when the user can.
    pub fn help(&self) -> Option<String> {
        match self {
            WatchError::Limit { .. } => Some(
                "raise the limit: `sudo sysctl fs.inotify.max_user_watches=524288`; to keep it \
                 after a reboot: `echo fs.inotify.max_user_watches=524288 | sudo tee \
                 /etc/sysctl.d/90-inotify-watches.conf`. Or watch fewer folders: `inputs` \
                 globs narrower than `**`"
                    .to_owned(),
            ),
            WatchError::Failed { .. } => None,
        }
    }

    /// notify's error, naming `path` when it names none.
    fn from_notify(error: &notify::Error, path: &Path) -> Self {
        let path = error
            .paths
            .first()
            .cloned()
            .unwrap_or_else(|| path.to_owned());
        let limit = match &error.kind {
            notify::ErrorKind::MaxFilesWatch => true,
            notify::ErrorKind::Io(io) => io.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        };
        if limit {
            WatchError::Limit { path }
        } else {
            WatchError::Failed {
                path,
                reason: error.to_string(),
            }
        }
    }
}

/// What one notification tells the loop.
#[derive(Debug)]
pub enum Notice {
    /// These paths changed.
    Changed(Vec<PathBuf>),
    /// The watch broke.
    Failed(WatchError),
}

/// The watched folders.
pub struct Folders {
    watcher: RecommendedWatcher,
    /// Each folder: whether recursively, and which folder (device, inode) the watch is on.
    watched: BTreeMap<PathBuf, (bool, Option<Identity>)>,
}

/// Which file or folder is at `path` now, if any. A folder deleted and made again under
/// the same name is another one, and the kernel's watch of the first is gone with it.
/// The inode number alone does not tell: the file system may give the new one the number
/// just freed, so its birth time is part of it.
pub fn identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.created().ok()))
}

/// What [`identity`] gives: device, inode and birth time (when the file system keeps it).
pub type Identity = (u64, u64, Option<std::time::SystemTime>);

impl Folders {
    /// A watch of no folder yet; `deliver` gets what each notification means, on notify's thread.
    pub fn new(deliver: impl Fn(Notice) + Send + 'static) -> Result<Self, WatchError> {
        let watcher =
            notify::recommended_watcher(move |result: notify::Result<Event>| match result {
                Ok(event) => {
                    if changes(event.kind) && !event.paths.is_empty() {
                        deliver(Notice::Changed(event.paths));
                    }
                }
                Err(e) => deliver(Notice::Failed(WatchError::from_notify(&e, Path::new("")))),
            })
            .map_err(|e| WatchError::from_notify(&e, Path::new("inotify")))?;
        Ok(Folders {
            watcher,
            watched: BTreeMap::new(),
        })
    }

    /// Watches exactly `wanted`: adds the new folders, drops the ones no longer wanted.
    pub fn sync(&mut self, wanted: &[Folder]) -> Result<(), WatchError> {
        let wanted: BTreeMap<PathBuf, (bool, Option<Identity>)> = wanted
            .iter()
            .map(|f| (f.path.clone(), (f.recursive, identity(&f.path))))
            .collect();
        for (path, watch) in &self.watched {
            if wanted.get(path) != Some(watch) {
                // A folder deleted meanwhile is no longer watched anyway.
                let _ = self.watcher.unwatch(path);
            }
        }
        self.watched
            .retain(|path, watch| wanted.get(path) == Some(watch));
        for (path, (recursive, id)) in wanted {
            if self.watched.contains_key(&path) {
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match self.watcher.watch(&path, mode) {
                Ok(()) => {
                    self.watched.insert(path, (recursive, id));
                }
                // Deleted since the rules were made: the next reload looks again.
                Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
                Err(e) => return Err(WatchError::from_notify(&e, &path)),
            }
        }
        Ok(())
    }

    /// How many folders are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }
}

/// Whether an event can mean content changed: opening or reading a file does not (a job
/// reading its inputs must not start a rerun); closing a file written to does.
fn changes(kind: EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn running_out_of_inotify_watches_says_how_to_raise_the_limit() {
        let path = Path::new("/w/src");
        for error in [
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
            notify::Error::io(std::io::Error::from_raw_os_error(libc::ENOSPC)),
        ] {
            let e = WatchError::from_notify(&error, path);
            assert!(
                matches!(&e, WatchError::Limit { path: p } if p == path),
                "{e:?}"
            );
            assert!(
                e.help()
                    .unwrap()
                    .contains("fs.inotify.max_user_watches=524288")
            );
            assert!(e.help().unwrap().contains("/etc/sysctl.d/"));
        }
        let other = notify::Error::io(std::io::Error::from_raw_os_error(libc::EACCES))
            .add_path(PathBuf::from("/w/secret"));
        let e = WatchError::from_notify(&other, path);
        assert!(matches!(&e, WatchError::Failed { path: p, .. } if p == Path::new("/w/secret")));
        assert!(e.help().is_none());
    }

    #[test]
    fn reading_is_not_a_change_and_writing_is() {
        assert!(!changes(EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes(EventKind::Create(CreateKind::File)));
        assert!(changes(EventKind::Modify(ModifyKind::Any)));
    }
}
