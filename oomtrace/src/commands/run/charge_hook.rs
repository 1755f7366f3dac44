//! The on-demand charge hook (the fexit on the charge function, fentry
//! backend only): when it is attached and detached. The rule:
//!
//! - at start, `--charge-hook off` gives it up, `always` arms it for the
//!   whole run (or warns that this backend has none), `on-demand` waits;
//! - a memcg reclaiming at its limit arms it;
//! - in `on-demand` mode, checked when it could be idle ([`next_check`]), it
//!   is disarmed once no memcg has reclaimed for [`CHARGE_HOOK_IDLE`];
//! - a failure to attach or detach is a warning, and the hook is given up.
use std::time::Duration;

use anyhow::Result;
use oomtrace_core::{
    base::Envelope,
    output::{ChargeHookRecord, RecordSink},
};

use crate::{
    commands::run::env::boot_ns_now,
    kernel::loader::{ChargeHookMode, Tracer},
};

/// How long without any memcg reclaim before the charge hook is detached.
const CHARGE_HOOK_IDLE: Duration = Duration::from_secs(10);

/// At start: applies `--charge-hook`.
pub fn start(mode: ChargeHookMode, tracer: &Tracer, out: &mut dyn RecordSink) -> Result<()> {
    match mode {
        ChargeHookMode::Off => tracer.drop_charge_hook(),
        ChargeHookMode::Always if tracer.charge_hook_state().is_none() => out.warning(
            "--charge-hook always: this backend has no charge hook (fentry only); charge failures outside the OOM path are not seen",
        )?,
        ChargeHookMode::Always => set(tracer, true, None, out)?,
        ChargeHookMode::OnDemand => {}
    }
    Ok(())
}

/// A memcg reclaims at its limit: arm the hook (nothing if it is armed
/// already or was given up).
pub fn on_memcg_at_limit(
    tracer: &Tracer,
    memcg: Option<String>,
    out: &mut dyn RecordSink,
) -> Result<()> {
    set(tracer, true, memcg, out)
}

/// When [`next_check`] says: in `on-demand` mode, detach the armed hook once no memcg
/// has reclaimed for [`CHARGE_HOOK_IDLE`].
pub fn on_second(mode: ChargeHookMode, tracer: &Tracer, out: &mut dyn RecordSink) -> Result<()> {
    if mode != ChargeHookMode::OnDemand || tracer.charge_hook_state() != Some(true) {
        return Ok(());
    }
    if idle(boot_ns_now(), tracer.latest_reclaim_boot_ns()) {
        set(tracer, false, None, out)?;
    }
    Ok(())
}

/// How long until the armed hook may be idle (the loop sleeps until then);
/// `None` when there is nothing to watch (not armed, or not on demand).
pub fn next_check(mode: ChargeHookMode, tracer: &Tracer) -> Option<Duration> {
    if mode != ChargeHookMode::OnDemand || tracer.charge_hook_state() != Some(true) {
        return None;
    }
    Some(until_idle(boot_ns_now(), tracer.latest_reclaim_boot_ns()))
}

fn until_idle(now_ns: u64, latest_reclaim_ns: Option<u64>) -> Duration {
    latest_reclaim_ns.map_or(Duration::ZERO, |last| {
        CHARGE_HOOK_IDLE.saturating_sub(Duration::from_nanos(now_ns.saturating_sub(last)))
    })
}

/// No memcg reclaim seen yet, or none for [`CHARGE_HOOK_IDLE`].
fn idle(now_ns: u64, latest_reclaim_ns: Option<u64>) -> bool {
    latest_reclaim_ns
        .is_none_or(|last| now_ns.saturating_sub(last) >= CHARGE_HOOK_IDLE.as_nanos() as u64)
}

/// Arms or disarms the hook if it is in the other state, with a
/// `charge_hook` record; a failure is a warning (the OOM-path hooks still
/// report), and the hook is not tried again.
fn set(
    tracer: &Tracer,
    armed: bool,
    memcg: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_after_ten_seconds_without_reclaim_or_with_none_seen() {
        let s = 1_000_000_000;
        assert!(idle(100 * s, None));
        assert!(idle(100 * s, Some(90 * s)));
        assert!(!idle(100 * s, Some(90 * s + 1)));
        // A reclaim stamped after `now` (clock read races) is not idle.
        assert!(!idle(100 * s, Some(101 * s)));
    }

    #[test]
    fn the_next_check_is_when_the_hook_would_be_idle() {
        let s = 1_000_000_000;
        assert_eq!(until_idle(100 * s, None), Duration::ZERO);
        assert_eq!(until_idle(100 * s, Some(97 * s)), Duration::from_secs(7));
        assert_eq!(until_idle(100 * s, Some(80 * s)), Duration::ZERO);
        assert_eq!(until_idle(100 * s, Some(101 * s)), CHARGE_HOOK_IDLE);
        // At that time it is idle, not a moment later.
        let at = 100 * s + until_idle(100 * s, Some(97 * s)).as_nanos() as u64;
        assert!(idle(at, Some(97 * s)) && !idle(at - 1, Some(97 * s)));
    }
}
