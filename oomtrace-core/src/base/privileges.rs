//! What the tracer kept of its privileges once its programs were attached:
//! a fact the `oomtrace` crate learns and the `start` record (and `doctor`)
//! report, so it lives below both.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privileges {
    /// The capabilities still held (permitted and effective), by name
    /// (`CAP_BPF`, ...); every other one is gone from every set.
    pub capabilities: Vec<String>,
    /// `PR_SET_NO_NEW_PRIVS` is set: no exec can raise them again.
    pub no_new_privs: bool,
    /// A seccomp allowlist filters the tracer's system calls (off with
    /// `--no-seccomp`).
    pub seccomp: bool,
}
