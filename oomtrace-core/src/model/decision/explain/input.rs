//! What the explanation reads: the decision's parts and the report.
use crate::{
    model::{
        decision::{
            pending::Sources,
            record::{Candidate, OomMemcg, Trigger, Victim},
        },
        score::BadnessModel,
    },
    report::KernelReport,
};

pub(crate) struct ExplainInput<'a> {
    pub(crate) sources: Sources,
    /// Some when candidate points were recomputed (oom_badness unseen): the
    /// kernel's `oc->chosen_points`, if known.
    pub(crate) points_recomputed: Option<Option<i64>>,
    pub(crate) constraint: Option<&'a str>,
    pub(crate) oom_memcg: Option<&'a OomMemcg>,
    pub(crate) victim_memcg: Option<&'a str>,
    pub(crate) trigger: &'a Trigger,
    pub(crate) victim: Option<&'a Victim>,
    pub(crate) candidates: &'a [Candidate],
    pub(crate) candidates_source: &'a str,
    /// With a /proc snapshot: its delay after the kill (ms) and tasks cut.
    pub(crate) snapshot: Option<(Option<f64>, u32)>,
    pub(crate) model: Option<BadnessModel>,
    pub(crate) totalpages: Option<u64>,
    pub(crate) page_size: u64,
    pub(crate) report: Option<&'a KernelReport>,
}
