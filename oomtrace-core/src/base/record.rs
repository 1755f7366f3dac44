//! The header every JSON record starts with.
use serde::{Deserialize, Serialize};

/// Version of the JSON records and dumps (docs/schema.json).
pub const SCHEMA_VERSION: u32 = 1;

/// `type`, `schema_version` and `time`, flattened into every record so that
/// a log store can route and order records without knowing their types.
/// `T` is `Option<String>` for decisions rebuilt from logs without times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T = String> {
    #[serde(rename = "type")]
    pub record_type: String,
    pub schema_version: u32,
    pub time: T,
}

impl<T> Envelope<T> {
    pub fn new(record_type: &str, time: T) -> Self {
        Self {
            record_type: record_type.to_owned(),
            schema_version: SCHEMA_VERSION,
            time,
        }
    }
}

impl Envelope {
    /// A header stamped now.
    pub fn now(record_type: &str) -> Self {
        Self::new(record_type, super::time::now_rfc3339())
    }
}
