//! The allow-list of programs that `process` tasks may run.
//!
//! An entry is a bare program name (`sort`), looked up once, when the executor starts, in
//! the executor's own `PATH` (absolute directories only), or an absolute path
//! (`/usr/bin/sort`). A task names its program with exactly one of the two strings an entry
//! stands for: the name as the operator wrote it, or the path it resolved to. Nothing is
//! normalised (`/usr/bin/../bin/sort`, `./sort` and `sort ` match nothing), and the path
//! that runs is the one resolved at start-up: a task's own `PATH` never picks the program.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why an allow-list entry was refused (at start-up: the operator has to fix it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllowListError {
    #[error("--allow-process: an empty program name")]
    Empty,
    #[error(
        "--allow-process {0:?}: a relative path; give a bare program name (looked up in PATH) or an absolute path"
    )]
    Relative(String),
    #[error(
        "--allow-process {0:?}: a program name must not contain a comma or a control character"
    )]
    BadName(String),
    #[error("--allow-process {name:?}: no executable file of that name in PATH ({path})")]
    NotFound { name: String, path: String },
    #[error("--allow-process {name:?}: {path} is not an executable file")]
    NotExecutable { name: String, path: String },
}

/// One allowed program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The entry as the operator wrote it.
    pub name: String,
    /// The executable it resolved to (for an absolute entry, the entry itself).
    pub path: PathBuf,
}

/// The programs `process` may run. Empty: `process` is not registered at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Allowed>,
}

impl AllowList {
    /// Resolves `names` against this process's `PATH`.
    pub fn resolve<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<AllowList, AllowListError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        Self::resolve_in(names, &path)
    }

    /// Resolves `names` against the search path `path` (`:`-separated directories).
    pub fn resolve_in<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
        path: &OsStr,
    ) -> Result<AllowList, AllowListError> {
        let mut entries: Vec<Allowed> = Vec::new();
        for name in names {
            let name = name.as_ref();
            let allowed = resolve_one(name, path)?;
            if !entries.iter().any(|e| e.name == allowed.name) {
                entries.push(allowed);
            }
        }
        Ok(AllowList { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Allowed] {
        &self.entries
    }

    /// The entry that `program` names exactly (by its name or its resolved path), if any.
    pub fn find(&self, program: &str) -> Option<&Allowed> {
        self.entries
            .iter()
            .find(|e| e.name == program || e.path.as_os_str() == OsStr::new(program))
    }

    /// The entries' names, comma-separated, for messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        names.join(", ")
    }
}

fn resolve_one(name: &str, search: &OsStr) -> Result<Allowed, AllowListError> {
    if name.is_empty() {
        return Err(AllowListError::Empty);
    }
    if name.contains(',') || name.chars().any(char::is_control) {
        return Err(AllowListError::BadName(name.to_owned()));
    }
    if name.contains('/') {
        let path = Path::new(name);
        if !path.is_absolute() {
            return Err(AllowListError::Relative(name.to_owned()));
        }
        if !is_executable(path) {
            return Err(AllowListError::NotExecutable {
                name: name.to_owned(),
                path: name.to_owned(),
            });
        }
        return Ok(Allowed {
            name: name.to_owned(),
            path: path.to_path_buf(),
        });
    }
    // Only absolute directories: an empty or relative PATH entry (".") would make the
    // program depend on the executor's working directory.
    std::env::split_paths(search)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .map(|path| Allowed {
            name: name.to_owned(),
            path,
        })
        .ok_or_else(|| AllowListError::NotFound {
            name: name.to_owned(),
            path: search.to_string_lossy().into_owned(),
        })
}

/// A regular file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
