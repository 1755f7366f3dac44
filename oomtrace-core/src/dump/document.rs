//! The dump document written per decision: the decision with its evidence.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    base::{SCHEMA_VERSION, host::HostFacts},
    model::decision::Decision,
};

/// One decision with its evidence: what `--dump-dir` writes per OOM kill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DumpDocument {
    #[serde(rename = "type")]
    pub record_type: String,
    pub schema_version: u32,
    pub decision: Decision,
    /// The kernel's own report, line by line, as it was read.
    pub kernel_report_lines: Vec<String>,
    /// The kernel events the decision was built from.
    pub events: Vec<Value>,
    pub host: HostFacts,
}

impl DumpDocument {
    pub fn new(decision: Decision, events: Vec<Value>, host: HostFacts) -> Self {
        Self {
            record_type: "dump".to_owned(),
            schema_version: SCHEMA_VERSION,
            kernel_report_lines: decision.report_lines.clone(),
            decision,
            events,
            host,
        }
    }
}
