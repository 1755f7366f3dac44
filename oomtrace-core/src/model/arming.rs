//! When the on-demand charge hook is attached: the rule, free of I/O.
//!
//! The hook, an fexit on `try_charge_memcg` (`try_charge` before 5.15), runs
//! on every charge of the machine while it is attached: about 2.5% of
//! charge-heavy work (docs/bench.md, `armed`). It is there for charges that
//! fail outside the OOM path (`__GFP_NORETRY` huge pages, non-blocking and
//! costly charges), and a charge fails that way only after memcg reclaim
//! could not free what it needed. So the hook is armed when a memcg reclaim
//! pass falls short of its target, and disarmed after [`IDLE`] without one.
//!
//! Reclaim alone is not the signal. A memcg at its limit full of page cache
//! (a database, anything streaming files) reclaims on almost every charge,
//! for as long as it runs, and every pass gets its target: the charges
//! succeed. Arming on any reclaim kept the hook attached on such nodes for
//! good; arming on a short pass leaves it off there.
//!
//! The kernel programs decide "short" on the spot (`memcg_reclaim_end`,
//! `nr_reclaimed < nr_to_reclaim`, the target read from the pass's
//! `scan_control`) and report such passes at most once a second per memcg,
//! armed or not, as `MEMCG_AT_LIMIT` events. Where the target cannot be read
//! (offsets missing from BTF) they report every pass with the target
//! unknown, and the rule falls back to arming on any at-limit reclaim
//! ([`Trigger::AnyReclaim`]), which the `charge_hook` record says.
//!
//! An fexit attached while a charge is under way does not fire when that
//! charge returns: the failures the hook catches are the ones after the pass
//! that armed it.
use std::time::Duration;

use oomtrace_ebpf::{MemcgAtLimitEvent, UNAVAILABLE_U64};

/// How long without a short reclaim pass before the hook is detached.
pub const IDLE: Duration = Duration::from_secs(10);

/// One memcg reclaim pass, as the kernel programs report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReclaimPass {
    /// cgroup id of the reclaiming task's memcg.
    pub memcg_id: u64,
    /// When it ended, `CLOCK_BOOTTIME` in nanoseconds.
    pub boot_ns: u64,
    pub nr_reclaimed: u64,
    /// `scan_control.nr_to_reclaim`; `None` where the kernel's layout is unknown.
    pub nr_to_reclaim: Option<u64>,
}

impl ReclaimPass {
    pub fn from_event(e: &MemcgAtLimitEvent) -> Self {
        Self {
            memcg_id: e.memcg_id,
            boot_ns: e.header.boot_ns,
            nr_reclaimed: e.nr_reclaimed,
            nr_to_reclaim: (e.nr_to_reclaim != UNAVAILABLE_U64).then_some(e.nr_to_reclaim),
        }
    }

    /// What this pass says about arming: `None` when it got its target.
    pub fn trigger(&self) -> Option<Trigger> {
        match self.nr_to_reclaim {
            None => Some(Trigger::AnyReclaim),
            Some(target) if self.nr_reclaimed < target => Some(Trigger::ShortReclaim),
            Some(_) => None,
        }
    }
}

/// Why a pass arms the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// It reclaimed less than its target.
    ShortReclaim,
    /// Its target is unknown on this kernel: any at-limit reclaim arms.
    AnyReclaim,
}

impl Trigger {
    /// The `rule` of the `charge_hook` record.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::ShortReclaim => "short_reclaim",
            Trigger::AnyReclaim => "any_reclaim",
        }
    }
}

/// What the collector does with the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Attach it; `memcg_id` is the memcg whose pass asked for it.
    Arm { memcg_id: u64, trigger: Trigger },
    /// Detach it.
    Disarm,
}

/// The arming rule's state: when a pass last asked for the hook.
#[derive(Debug, Clone)]
pub struct ArmingRule {
    idle_ns: u64,
    last_trigger_ns: Option<u64>,
    /// The kernel's count at the previous check ([`Self::on_kernel_count`]).
    kernel_count: Option<u64>,
}

impl Default for ArmingRule {
    fn default() -> Self {
        Self::new(IDLE)
    }
}

impl ArmingRule {
    pub fn new(idle: Duration) -> Self {
        Self {
            idle_ns: u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX),
            last_trigger_ns: None,
            kernel_count: None,
        }
    }

    /// One reported pass; `armed`: whether the hook is attached now. A pass
    /// that asks for the hook arms a detached one and keeps an attached one
    /// armed; a pass that got its target changes nothing.
    pub fn on_reclaim(&mut self, pass: ReclaimPass, armed: bool) -> Option<Action> {
        let trigger = pass.trigger()?;
        // Events of two CPUs may arrive out of order: keep the latest.
        self.last_trigger_ns = Some(
            self.last_trigger_ns
                .map_or(pass.boot_ns, |t| t.max(pass.boot_ns)),
        );
        (!armed).then_some(Action::Arm {
            memcg_id: pass.memcg_id,
            trigger,
        })
    }

    /// The collector's timer; `now_ns` is `CLOCK_BOOTTIME`. Disarms an
    /// attached hook once no pass has asked for it for the idle time (or
    /// none ever did: the hook was attached by something else).
    /// The kernel's own count of passes that would arm (short ones, or all
    /// where the target is unknown), read at a check: more than at the
    /// previous check means one came since, even if its event still waits
    /// in the ring buffer behind a storm's (the collector may lag seconds
    /// behind the kernel); the hook must not be detached then.
    pub fn on_kernel_count(&mut self, now_ns: u64, count: u64) {
        if self.kernel_count.is_some_and(|seen| count != seen) {
            self.last_trigger_ns = Some(self.last_trigger_ns.map_or(now_ns, |t| t.max(now_ns)));
        }
        self.kernel_count = Some(count);
    }

    pub fn on_tick(&mut self, now_ns: u64, armed: bool) -> Option<Action> {
        if !armed {
            return None;
        }
        let idle = self
            .last_trigger_ns
            .is_none_or(|last| now_ns.saturating_sub(last) >= self.idle_ns);
        idle.then_some(Action::Disarm)
    }

    /// When [`Self::on_tick`] may next disarm (boot ns): `None` while the hook
    /// is detached, so an event-driven collector needs no timer then.
    pub fn next_deadline(&self, armed: bool) -> Option<u64> {
        armed.then(|| {
            self.last_trigger_ns
                .map_or(0, |last| last.saturating_add(self.idle_ns))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn pass(boot_s: u64, nr_reclaimed: u64, nr_to_reclaim: Option<u64>) -> ReclaimPass {
        ReclaimPass {
            memcg_id: 77,
            boot_ns: boot_s * S,
            nr_reclaimed,
            nr_to_reclaim,
        }
    }

    fn arm(trigger: Trigger) -> Option<Action> {
        Some(Action::Arm {
            memcg_id: 77,
            trigger,
        })
    }

    #[test]
    fn short_means_below_the_target_and_unknown_means_any_reclaim() {
        assert_eq!(pass(0, 0, Some(32)).trigger(), Some(Trigger::ShortReclaim));
        assert_eq!(pass(0, 31, Some(32)).trigger(), Some(Trigger::ShortReclaim));
        assert_eq!(pass(0, 32, Some(32)).trigger(), None);
        assert_eq!(pass(0, 40, Some(32)).trigger(), None);
        // A huge page's pass: 512 pages wanted.
        assert_eq!(
            pass(0, 300, Some(512)).trigger(),
            Some(Trigger::ShortReclaim)
        );
        assert_eq!(pass(0, 512, Some(512)).trigger(), None);
        // Target unknown: never guessed, the pass arms as any reclaim did.
        assert_eq!(pass(0, 1000, None).trigger(), Some(Trigger::AnyReclaim));
    }

    #[test]
    fn a_memcg_full_of_page_cache_never_arms() {
        // Reclaim on every charge, each pass getting its target.
        let mut rule = ArmingRule::default();
        for t in 0..1000 {
            assert_eq!(rule.on_reclaim(pass(t, 32, Some(32)), false), None);
            assert_eq!(rule.on_tick(t * S, false), None);
            assert_eq!(rule.next_deadline(false), None);
        }
    }

    #[test]
    fn a_short_pass_arms_and_the_hook_stays_armed_while_they_go_on() {
        let mut rule = ArmingRule::default();
        assert_eq!(
            rule.on_reclaim(pass(5, 0, Some(512)), false),
            arm(Trigger::ShortReclaim)
        );
        // Attached now: further short passes keep it armed, no new action.
        for t in 6..30 {
            assert_eq!(rule.on_reclaim(pass(t, 3, Some(32)), true), None);
            assert_eq!(rule.on_tick(t * S, true), None);
        }
        // Passes that get their target do not extend it.
        for t in 30..39 {
            assert_eq!(rule.on_reclaim(pass(t, 64, Some(32)), true), None);
            assert_eq!(rule.on_tick(t * S, true), None);
        }
        assert_eq!(rule.next_deadline(true), Some(39 * S));
        assert_eq!(rule.on_tick(39 * S - 1, true), None);
        assert_eq!(rule.on_tick(39 * S, true), Some(Action::Disarm));
        // Detached: no deadline, and the next short pass arms again.
        assert_eq!(rule.next_deadline(false), None);
        assert_eq!(rule.on_tick(50 * S, false), None);
        assert_eq!(
            rule.on_reclaim(pass(51, 0, Some(32)), false),
            arm(Trigger::ShortReclaim)
        );
    }

    #[test]
    fn without_a_target_every_reported_pass_arms_and_keeps_it_armed() {
        let mut rule = ArmingRule::default();
        assert_eq!(
            rule.on_reclaim(pass(1, 64, None), false),
            arm(Trigger::AnyReclaim)
        );
        assert_eq!(rule.on_reclaim(pass(9, 64, None), true), None);
        assert_eq!(rule.on_tick(18 * S, true), None);
        assert_eq!(rule.on_tick(19 * S, true), Some(Action::Disarm));
    }

    #[test]
    fn late_events_do_not_move_the_last_short_pass_back() {
        let mut rule = ArmingRule::new(Duration::from_secs(10));
        rule.on_reclaim(pass(20, 0, Some(32)), false);
        rule.on_reclaim(pass(12, 0, Some(32)), true);
        assert_eq!(rule.next_deadline(true), Some(30 * S));
        assert_eq!(rule.on_tick(29 * S, true), None);
        assert_eq!(rule.on_tick(30 * S, true), Some(Action::Disarm));
    }

    #[test]
    fn a_hook_armed_without_a_short_pass_is_disarmed_at_the_next_tick() {
        let mut rule = ArmingRule::default();
        assert_eq!(rule.next_deadline(true), Some(0));
        assert_eq!(rule.on_tick(S, true), Some(Action::Disarm));
        assert_eq!(rule.on_tick(S, false), None);
    }

    #[test]
    fn from_event_takes_the_pass_its_time_and_an_unknown_target() {
        let mut e = MemcgAtLimitEvent {
            memcg_id: 9,
            nr_reclaimed: 4,
            nr_to_reclaim: 512,
            short_passes: 2,
            ..Default::default()
        };
        e.header.boot_ns = 123;
        assert_eq!(
            ReclaimPass::from_event(&e),
            ReclaimPass {
                memcg_id: 9,
                boot_ns: 123,
                nr_reclaimed: 4,
                nr_to_reclaim: Some(512),
            }
        );
        e.nr_to_reclaim = UNAVAILABLE_U64;
        assert_eq!(ReclaimPass::from_event(&e).nr_to_reclaim, None);
    }

    #[test]
    fn a_short_pass_the_kernel_counted_keeps_the_hook_while_its_event_lags() {
        let mut rule = ArmingRule::default();
        assert_eq!(
            rule.on_reclaim(pass(1, 0, Some(32)), false),
            arm(Trigger::ShortReclaim)
        );
        // First look: the count is a baseline only.
        rule.on_kernel_count(2 * S, 5);
        // At the deadline the kernel counted more short passes, whose events
        // the collector has not read yet: not idle, checked again later.
        rule.on_kernel_count(11 * S, 9);
        assert_eq!(rule.on_tick(11 * S, true), None);
        assert_eq!(rule.next_deadline(true), Some(21 * S));
        // Nothing since: idle.
        rule.on_kernel_count(21 * S, 9);
        assert_eq!(rule.on_tick(21 * S, true), Some(Action::Disarm));
    }
}
