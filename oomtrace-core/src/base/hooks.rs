//! What happened to one kernel hook: a fact the loader learns and the
//! `start` record reports, so it lives below both.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookStatus {
    pub hook: String,
    pub attached: bool,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
