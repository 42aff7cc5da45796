//! Output files are written whole or not at all: into a temporary file beside the
//! destination, renamed over it only when complete.
//!
//! A destination that exists and is not a regular file (`/dev/null`, a FIFO, a terminal) cannot
//! be replaced: renaming over `/dev/null` would turn the device into a file for the whole
//! machine. Such a destination is written directly. A symbolic link is followed, so the file it
//! names is replaced and the link stays.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written, so that an abort (a second Ctrl-C) can remove them before
/// the process exits without running destructors. Touched once per file, never per packet.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves a list that is still valid.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget(tmp: &Path) {
    pending().retain(|p| p != tmp);
}

/// Removes every temporary output file still being written; for an abort that exits at once.
pub fn remove_pending() {
    for p in pending().drain(..) {
        let _ = fs::remove_file(p);
    }
}

/// A file being written; it appears under its real name only on [`TempFile::commit`], and
/// is removed if dropped before (unless the destination is a device or FIFO, written directly).
#[derive(Debug)]
pub struct TempFile {
    file: Option<File>,
    /// Empty when writing directly, or once committed: nothing for Drop to remove.
    tmp: PathBuf,
    dest: PathBuf,
}

impl TempFile {
    /// Creates `.NAME.tmp-PID` in the destination's directory; opens the destination itself
    /// when it exists and is not a regular file.
    pub fn create(dest: &Path) -> io::Result<TempFile> {
        // metadata() follows links: a link to a device is a device.
        if let Ok(meta) = fs::metadata(dest)
            && !meta.is_file()
        {
            if meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "the path is a directory",
                ));
            }
            let file = OpenOptions::new().write(true).open(dest)?;
            return Ok(TempFile {
                file: Some(file),
                tmp: PathBuf::new(),
                dest: dest.to_path_buf(),
            });
        }
        let linked = follow_links(dest)?;
        let dest = linked.as_path();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        pending().push(tmp.clone());
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .inspect_err(|_| forget(&tmp))?;
        Ok(TempFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The file to write into.
    pub fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the temporary file is closed"))
    }

    /// Flushes, closes and renames the file over the destination.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
            drop(f);
        }
        if self.tmp.as_os_str().is_empty() {
            return Ok(());
        }
        let result = fs::rename(&self.tmp, &self.dest);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        forget(&self.tmp);
        // Nothing left for Drop to clean up either way.
        self.tmp = PathBuf::new();
        result
    }
}

/// The path at the end of `dest`'s chain of symbolic links, which need not exist yet (a link
/// to a file still to be written is followed, not replaced). Writing `dest` writes this file.
pub fn follow_links(dest: &Path) -> io::Result<PathBuf> {
    let mut path = dest.to_path_buf();
    // The kernel's own limit (ELOOP), so a cycle of links ends.
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                // A relative target is relative to the link's directory; join keeps an
                // absolute one as it is.
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    ))
}

/// Whether two paths name one file: the same file when both exist (hard links, `./`, symbolic
/// links), else the same location once the directories and links are resolved (an output that
/// does not exist yet but would be written where another one goes).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if same_existing_file(a, b) {
        return true;
    }
    match (write_location(a), write_location(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Whether two paths name the same existing file (through links, `.` and `..` too).
fn same_existing_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
        false
    }
    #[cfg(not(unix))]
    {
        match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(ca), Ok(cb)) => ca == cb,
            _ => false,
        }
    }
}

/// Where writing `path` would put the file: links followed (also a link to a file not written
/// yet) and its directory made absolute; `None` when the directory does not exist.
pub fn write_location(path: &Path) -> Option<PathBuf> {
    // The same chain of links `TempFile` follows.
    let p = follow_links(path).ok()?;
    let name = p.file_name()?.to_os_string();
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some(fs::canonicalize(dir).ok()?.join(name))
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file.take();
            let _ = fs::remove_file(&self.tmp);
            forget(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` whole or not at all.
pub fn write_whole(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut t = TempFile::create(dest)?;
    t.file()?.write_all(bytes)?;
    t.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_temp_file_leaves_the_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.json");
        fs::write(&dest, b"old").unwrap();
        {
            let mut t = TempFile::create(&dest).unwrap();
            t.file().unwrap().write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
        write_whole(&dest, b"new").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
    }

    /// A FIFO stands for `/dev/null` and the like: testing on `/dev/null` itself would, on a
    /// regression, break the machine's `/dev/null` for everything else.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_directly_and_stays() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        match std::process::Command::new("mkfifo").arg(&fifo).status() {
            Ok(s) if s.success() => {}
            _ => {
                eprintln!("skipped: mkfifo is not available");
                return;
            }
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write_whole(&fifo, b"through the pipe").unwrap();
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.pcap");
        let link = dir.path().join("link.pcap");
        fs::write(&target, b"old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_whole(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        // A relative link to a file not written yet: the file is created, the link kept.
        let later = dir.path().join("later.pcap");
        std::os::unix::fs::symlink("not-yet.pcap", &later).unwrap();
        write_whole(&later, b"first").unwrap();
        assert!(
            fs::symlink_metadata(&later)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(dir.path().join("not-yet.pcap")).unwrap(), b"first");
        // A cycle of links is an error, not a hang.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(write_whole(&a, b"x").is_err());
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_whole(dir.path(), b"x").is_err());
    }
}
