//! The rss read learned by the model, handed to the kernel programs: once a
//! decision has learned from the kernel's own numbers which read this
//! kernel's OOM killer uses (`model::exact`), the candidate hooks are told;
//! with `get_mm_counter` they stop summing the candidates' per-CPU counters.

use anyhow::Result;
use oomtrace_core::{
    model::{decision::Decision, exact::RssRule},
    output::RecordSink,
};

use crate::kernel::loader::Tracer;

/// What the kernel programs were told last (None: nothing yet).
#[derive(Debug, Default)]
pub struct SharedRssRule(Option<RssRule>);

impl SharedRssRule {
    /// Tells the programs the rule the latest of `decisions` learned, when
    /// it differs from what they were told; a failure is a warning.
    pub fn share(
        &mut self,
        tracer: &Tracer,
        decisions: &[Decision],
        out: &mut dyn RecordSink,
    ) -> Result<()> {
        let learned = decisions
            .iter()
            .rev()
            .find_map(|d| d.rss_rule.as_deref().and_then(RssRule::from_name));
        if let Some(rule) = learned
            && self.0 != Some(rule)
        {
            self.0 = Some(rule);
            if let Err(e) = tracer.set_rss_rule(rule.map_value()) {
                out.warning(&format!(
                    "telling the kernel programs the rss rule failed ({e})"
                ))?;
            }
        }
        Ok(())
    }
}
