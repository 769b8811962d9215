//! [`SharedDir`]: objects as files in a directory that the proxy and the executors on its
//! host share (a tmpfs such as `/dev/shm`), so that a large object crosses neither a socket
//! nor Redis on its way between two tasks on one host.
//!
//! **Layout.** `<dir>/.probe` holds a nonce the proxy wrote at start-up and announces in
//! its handshake: a client that reads the same nonce there shares the directory. Each job's
//! objects live in `<dir>/<job>/`, one file per object, named after the key without its job
//! prefix (`obj:42`). Only keys of a job ([`ObjectKey::owner`]) whose job id and name use
//! plain characters are kept here; any other key goes through the proxy as before.
//!
//! **Atomicity.** A writer writes a hidden temporary file in the job's directory and renames
//! it over the object's name, so a reader sees a whole object or none, and a rewrite of the
//! same output replaces it whole.
//!
//! **Lifetime.** The proxy deletes an object when the store reports it released (its
//! readers are done with it), and a whole job's directory once the job is gone from the
//! store (`rukong_kvstore_proxy::server`'s sweep). The directory is created `0700`: only the
//! proxy's user (and processes of that user) can read or write objects.

use crate::ids::JobId;
use crate::messages::ObjectKey;
use bytes::Bytes;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const PROBE: &str = ".probe";

/// A directory of objects shared on one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedDir {
    dir: PathBuf,
}

/// Whether `s` is safe as one path component: plain characters, not hidden.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl SharedDir {
    /// Creates (or reuses) `dir` for a proxy, private to this user, and writes a fresh
    /// probe there; returns the directory and the probe's nonce.
    pub fn create(dir: &Path) -> io::Result<(SharedDir, String)> {
        std::fs::create_dir_all(dir)?;
        if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link",
            ));
        }
        let shared = SharedDir {
            dir: dir.to_path_buf(),
        };
        let nonce = JobId::generate().as_str().to_string();
        let probe = dir.join(PROBE);
        shared.write_atomic(&probe, nonce.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            // A directory someone else made (to read what is written there) is refused:
            // the probe this process just wrote has this process's user as its owner.
            let (owner, me) = (
                std::fs::metadata(dir)?.uid(),
                std::fs::metadata(&probe)?.uid(),
            );
            if owner != me {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("it belongs to uid {owner}, not to this process's uid {me}"),
                ));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok((shared, nonce))
    }

    /// The directory at `dir`, when its probe holds `nonce`: the proxy that announced it
    /// runs on this host and its directory is readable here.
    pub fn open(dir: &Path, nonce: &str) -> Option<SharedDir> {
        let probe = std::fs::read(dir.join(PROBE)).ok()?;
        (probe == nonce.as_bytes()).then(|| SharedDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where `key`'s object lives, or `None` when this directory does not keep such keys.
    pub fn file(&self, key: &ObjectKey) -> Option<PathBuf> {
        let (job, name) = key.owner()?;
        (plain(job) && plain(name)).then(|| self.dir.join(job).join(name))
    }

    /// Writes `key`'s object; `Ok(false)` when this directory does not keep such keys.
    pub fn put(&self, key: &ObjectKey, data: &[u8]) -> io::Result<bool> {
        let Some(mut w) = self.writer(key)? else {
            return Ok(false);
        };
        w.write(data)?;
        w.commit()?;
        Ok(true)
    }

    /// A writer of `key`'s object in pieces, which readers see only once it is committed
    /// whole; `None` when this directory does not keep such keys.
    pub fn writer(&self, key: &ObjectKey) -> io::Result<Option<ObjectWriter>> {
        let Some(file) = self.file(key) else {
            return Ok(None);
        };
        if let Some(job) = file.parent() {
            std::fs::create_dir_all(job)?;
        }
        ObjectWriter::create(file).map(Some)
    }

    /// `key`'s object opened for reading, with its length; `None` when there is no such
    /// file (or no such key here). The object stays readable through the handle even if it
    /// is replaced or removed meanwhile.
    pub fn open_object(&self, key: &ObjectKey) -> io::Result<Option<(std::fs::File, u64)>> {
        let Some(file) = self.file(key) else {
            return Ok(None);
        };
        match std::fs::File::open(file) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `key`'s object, `None` when there is no such file (or no such key here).
    pub fn get(&self, key: &ObjectKey) -> io::Result<Option<Bytes>> {
        let Some(file) = self.file(key) else {
            return Ok(None);
        };
        match std::fs::read(file) {
            Ok(v) => Ok(Some(Bytes::from(v))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes `key`'s object; `Ok(false)` when there was none.
    pub fn remove(&self, key: &ObjectKey) -> io::Result<bool> {
        let Some(file) = self.file(key) else {
            return Ok(false);
        };
        match std::fs::remove_file(file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The jobs that have a directory here.
    pub fn jobs(&self) -> io::Result<Vec<JobId>> {
        let mut jobs = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            match name.to_str() {
                Some(n) if plain(n) && entry.file_type()?.is_dir() => jobs.push(JobId::new(n)),
                _ => {}
            }
        }
        Ok(jobs)
    }

    /// Deletes a job's objects; returns the bytes freed.
    pub fn remove_job(&self, job: &JobId) -> io::Result<u64> {
        if !plain(job.as_str()) {
            return Ok(0);
        }
        let dir = self.dir.join(job.as_str());
        let mut bytes = 0;
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(bytes),
            Err(e) => Err(e),
        }
    }

    /// Writes `file` whole: a hidden temporary file beside it, renamed over it.
    fn write_atomic(&self, file: &Path, data: &[u8]) -> io::Result<()> {
        let mut w = ObjectWriter::create(file.to_path_buf())?;
        w.write(data)?;
        w.commit()
    }
}

/// A file being written in pieces: a hidden temporary file beside its name, renamed over
/// the name by [`ObjectWriter::commit`], and removed if it is dropped uncommitted.
#[derive(Debug)]
pub struct ObjectWriter {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<std::fs::File>,
    /// Bytes written so far, by writes that succeeded whole.
    written: u64,
}

impl ObjectWriter {
    fn create(dest: PathBuf) -> io::Result<ObjectWriter> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(
            ".{name}.{}-{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&tmp)?;
        Ok(ObjectWriter {
            tmp,
            dest,
            file: Some(file),
            written: 0,
        })
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("closed"))?;
        file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// What the writes that succeeded wrote, read back (to keep them elsewhere after a
    /// write failed); the writer is discarded.
    pub fn recover(mut self) -> io::Result<Vec<u8>> {
        self.file = None;
        let mut data = Vec::with_capacity(self.written as usize);
        std::fs::File::open(&self.tmp)?
            .take(self.written)
            .read_to_end(&mut data)?;
        if data.len() as u64 != self.written {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the partly written object is shorter than what was written",
            ));
        }
        Ok(data)
    }

    /// Makes the object visible whole under its name. After a failure the writer is still
    /// whole (to [`ObjectWriter::recover`] what it wrote).
    pub fn commit(&mut self) -> io::Result<()> {
        self.file = None;
        std::fs::rename(&self.tmp, &self.dest)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        self.file = None;
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskIdx;

    fn dir() -> (tempfile::TempDir, SharedDir, String) {
        let t = tempfile::tempdir().unwrap();
        let (d, nonce) = SharedDir::create(&t.path().join("objects")).unwrap();
        (t, d, nonce)
    }

    #[test]
    fn an_object_is_written_whole_read_back_and_removed() {
        let (_t, d, _) = dir();
        let job = JobId::new("j1");
        let key = ObjectKey::for_output(&job, TaskIdx(7));
        assert_eq!(d.get(&key).unwrap(), None);
        assert!(d.put(&key, b"first").unwrap());
        assert!(d.put(&key, b"second").unwrap());
        assert_eq!(d.get(&key).unwrap().as_deref(), Some(&b"second"[..]));
        let files: Vec<_> = std::fs::read_dir(d.path().join("j1")).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
        assert!(d.remove(&key).unwrap());
        assert!(!d.remove(&key).unwrap());
        assert_eq!(d.get(&key).unwrap(), None);
    }

    #[test]
    fn an_object_written_in_pieces_appears_only_when_committed() {
        let (_t, d, _) = dir();
        let key = ObjectKey::for_output(&JobId::new("j2"), TaskIdx(1));
        let mut w = d.writer(&key).unwrap().unwrap();
        w.write(b"abc").unwrap();
        w.write(b"def").unwrap();
        assert_eq!(d.get(&key).unwrap(), None, "visible before the commit");
        w.commit().unwrap();
        let (mut f, len) = d.open_object(&key).unwrap().unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        assert_eq!((len, &got[..]), (6, &b"abcdef"[..]));

        // Dropped uncommitted: nothing left; recovered: what was written.
        let mut w = d.writer(&key).unwrap().unwrap();
        w.write(b"partial").unwrap();
        drop(w);
        let mut w = d.writer(&key).unwrap().unwrap();
        w.write(b"kept").unwrap();
        assert_eq!(w.recover().unwrap(), b"kept");
        let files: Vec<_> = std::fs::read_dir(d.path().join("j2")).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
        assert_eq!(d.get(&key).unwrap().as_deref(), Some(&b"abcdef"[..]));
        assert!(d.open_object(&ObjectKey::new("loose")).unwrap().is_none());
        d.remove(&key).unwrap();
        assert!(d.open_object(&key).unwrap().is_none());
    }

    #[test]
    fn only_the_proxy_that_wrote_the_probe_is_recognised() {
        let (_t, d, nonce) = dir();
        assert_eq!(SharedDir::open(d.path(), &nonce), Some(d.clone()));
        assert_eq!(SharedDir::open(d.path(), "someone-else"), None);
        assert_eq!(
            SharedDir::open(Path::new("/nonexistent/rukong"), &nonce),
            None
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_not_taken_for_the_directory() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), t.path().join("link")).unwrap();
        let e = SharedDir::create(&t.path().join("link")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn keys_that_are_not_plain_job_keys_are_not_kept() {
        let (_t, d, _) = dir();
        for key in [
            "loose-key",
            "rk:{../up}:obj:1",
            "rk:{j}:../x",
            "rk:{j}:.hidden",
        ] {
            let key = ObjectKey::new(key);
            assert_eq!(d.file(&key), None, "{key}");
            assert!(!d.put(&key, b"x").unwrap(), "{key}");
        }
    }

    #[test]
    fn a_jobs_objects_go_with_it() {
        let (_t, d, _) = dir();
        let (a, b) = (JobId::new("ja"), JobId::new("jb"));
        d.put(&ObjectKey::for_output(&a, TaskIdx(1)), &[1; 100])
            .unwrap();
        d.put(&ObjectKey::for_output(&a, TaskIdx(2)), &[2; 50])
            .unwrap();
        d.put(&ObjectKey::for_output(&b, TaskIdx(1)), &[3; 10])
            .unwrap();
        let mut jobs = d.jobs().unwrap();
        jobs.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(jobs, vec![a.clone(), b.clone()]);
        assert_eq!(d.remove_job(&a).unwrap(), 150);
        assert_eq!(d.remove_job(&a).unwrap(), 0);
        assert_eq!(d.jobs().unwrap(), vec![b.clone()]);
        assert!(
            d.get(&ObjectKey::for_output(&b, TaskIdx(1)))
                .unwrap()
                .is_some()
        );
    }
}
