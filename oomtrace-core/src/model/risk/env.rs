//! What the risk model asks of the host, behind a trait.
use crate::{
    cgroup::{container::Container, tasks::TaskSample},
    model::score::BadnessModel,
};

use super::MemcgSample;

/// The host as the risk model sees it; implemented live by the session, and
/// by recorded traces in the tests.
pub trait RiskEnvironment {
    /// The memcg's counters now (`memcg`: path relative to the hierarchy's
    /// root); `None` once it is gone.
    fn sample(&mut self, memcg: &str) -> Option<MemcgSample>;
    /// The processes of the memcg and its descendants with their memory.
    fn tasks(&mut self, memcg: &str) -> Vec<TaskSample>;
    /// The container the memcg belongs to, named as decisions name it.
    fn container(&mut self, _memcg: &str) -> Option<Container> {
        None
    }
    fn badness_model(&self) -> Option<BadnessModel> {
        None
    }
    fn page_size(&self) -> u64;
}
