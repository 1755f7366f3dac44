//! The lowest layer: units, time, the record envelope and host facts. It
//! imports nothing from the crate, so every other layer may use it.
pub mod backlog;
pub mod bounds;
pub mod dir;
pub mod hooks;
pub mod host;
pub mod lines;
pub mod privileges;
pub mod record;
pub mod scrub;
pub mod text;
pub mod time;
pub mod units;

pub use record::{Envelope, SCHEMA_VERSION};
