//! Post-mortem dumps: the document written per decision, its writer with
//! retention, the spool that writes them off the event loop, and the reader behind `oomtrace report`;
//! the same safe directory for other small files of ours (`private_dir`, the `--state-dir`).
pub mod document;
pub mod private_dir;
pub mod spool;
pub mod writer;

pub mod read;

pub use document::DumpDocument;
pub use spool::{DUMP_BACKLOG, DUMP_BACKLOG_BYTES, DumpSpool};
pub use writer::{DumpConfig, DumpError, DumpWriter};
