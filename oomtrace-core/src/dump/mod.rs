//! Post-mortem dumps: the document written per decision, its writer with
//! retention, and the reader behind `oomtrace report`.
pub mod document;
pub mod writer;

pub mod read;

pub use document::DumpDocument;
pub use writer::{DumpConfig, DumpError, DumpWriter};
