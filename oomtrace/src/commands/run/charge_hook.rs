//! The on-demand charge hook (the fexit on the charge function, fentry
//! backend only): when it is attached and detached. The policy:
//!
//! - at start, `--charge-hook off` gives it up, `always` arms it for the
//!   whole run (or warns that this backend has none), `on-demand` waits;
//! - in `on-demand` mode, [`ArmingRule`] decides: a memcg reclaim pass that
//!   falls short of its target arms it (any at-limit reclaim where the
//!   kernel's target cannot be read), and [`ChargeHook::on_tick`] disarms it
//!   once no such pass came for `model::arming::IDLE` (10 s);
//! - a failure to attach or detach is a warning, and the hook is given up.
use std::time::Duration;

use anyhow::Result;
use oomtrace_core::{
    base::Envelope,
    model::{
        arming::{Action, ArmingRule, ReclaimPass, Trigger},
        decision::Environment,
    },
    output::{ChargeHookRecord, RecordSink},
};
use oomtrace_ebpf::MemcgAtLimitEvent;

use crate::{
    commands::run::env::LiveEnv,
    kernel::loader::{ChargeHookMode, Tracer},
};

pub struct ChargeHook {
    mode: ChargeHookMode,
    rule: ArmingRule,
    /// A pass's target could not be read: every pass arms.
    any_reclaim: bool,
}

impl ChargeHook {
    pub fn new(mode: ChargeHookMode) -> Self {
        Self {
            mode,
            rule: ArmingRule::default(),
            any_reclaim: false,
        }
    }

    /// At start: applies `--charge-hook`.
    pub fn start(&self, tracer: &Tracer, out: &mut dyn RecordSink) -> Result<()> {
        match self.mode {
            ChargeHookMode::Off => tracer.drop_charge_hook(),
            ChargeHookMode::Always if tracer.charge_hook_state().is_none() => out.warning(
                "--charge-hook always: this backend has no charge hook (fentry only); charge failures outside the OOM path are not seen",
            )?,
            ChargeHookMode::Always => set(tracer, true, None, None, out)?,
            ChargeHookMode::OnDemand => {}
        }
        Ok(())
    }

    /// A memcg reclaim pass fell short (or its target is unknown): the rule
    /// may arm the hook (nothing if it is armed already or was given up).
    pub fn on_memcg_at_limit(
        &mut self,
        event: &MemcgAtLimitEvent,
        env: &mut LiveEnv,
        out: &mut dyn RecordSink,
    ) -> Result<()> {
        let armed = env.tracer.charge_hook_state() == Some(true);
        let pass = ReclaimPass::from_event(event);
        self.any_reclaim |= pass.trigger() == Some(Trigger::AnyReclaim);
        if let Some(Action::Arm { memcg_id, trigger }) = self.rule.on_reclaim(pass, armed) {
            let memcg = env.memcg_path(memcg_id);
            set(&env.tracer, true, memcg, Some(trigger), out)?;
        }
        Ok(())
    }

    /// The periodic check, `now_ns` in `CLOCK_BOOTTIME`: in `on-demand` mode,
    /// detach the armed hook once the rule says it has been idle.
    pub fn on_tick(
        &mut self,
        now_ns: u64,
        tracer: &Tracer,
        out: &mut dyn RecordSink,
    ) -> Result<()> {
        if self.mode != ChargeHookMode::OnDemand {
            return Ok(());
        }
        let armed = tracer.charge_hook_state() == Some(true);
        let (all, short) = tracer.reclaim_pass_counts();
        // Events whose target was unknown armed on any pass: count those.
        let count = if self.any_reclaim { all } else { short };
        self.rule.on_kernel_count(now_ns, count);
        if self.rule.on_tick(now_ns, armed) == Some(Action::Disarm) {
            set(tracer, false, None, None, out)?;
        }
        Ok(())
    }

    /// How long from `now_ns` until [`Self::on_tick`] may have something to
    /// do (the loop sleeps until then); `None` while the hook is detached or
    /// not the rule's to detach: no wake-up needed.
    pub fn next_check(&self, now_ns: u64, tracer: &Tracer) -> Option<Duration> {
        if self.mode != ChargeHookMode::OnDemand {
            return None;
        }
        let armed = tracer.charge_hook_state() == Some(true);
        let deadline = self.rule.next_deadline(armed)?;
        Some(Duration::from_nanos(deadline.saturating_sub(now_ns)))
    }
}

/// Arms or disarms the hook if it is in the other state, with a
/// `charge_hook` record; a failure is a warning (the OOM-path hooks still
/// report), and the hook is not tried again.
fn set(
    tracer: &Tracer,
    armed: bool,
    memcg: Option<String>,
    trigger: Option<Trigger>,
    out: &mut dyn RecordSink,
) -> Result<()> {
    if tracer.charge_hook_state() != Some(!armed) {
        return Ok(());
    }
    match tracer.set_charge_hook(armed) {
        Ok(()) => out.charge_hook(&ChargeHookRecord {
            envelope: Envelope::now("charge_hook"),
            state: if armed { "armed" } else { "disarmed" },
            memcg,
            rule: trigger.map(Trigger::name),
        })?,
        Err(e) => {
            out.warning(&format!(
                "the on-demand charge hook could not be {}: {e}; charge failures outside the OOM path are not seen",
                if armed { "attached" } else { "detached" }
            ))?;
            tracer.drop_charge_hook();
        }
    }
    Ok(())
}
