//! When a decision goes out: as soon as every piece that can still come is
//! in, with no fixed grace; the waits that remain wait for an event.
use std::time::{Duration, Instant};

use oomtrace_ebpf::{ReaperEvent, VictimExitEvent, reaper_step};

use super::{DEADLINE, TRACEPOINTS, fixtures, items, kill_pid, mark, storm_kills};
use crate::{
    events::Event,
    model::decision::{Builder, OfflineEnv, Sources, builder::SWEEP_SETTLE},
    report::ReportItem,
};

/// The tracepoint backend with the victim-exit hook, as it runs live.
const TRACEPOINTS_WITH_EXIT: Sources = Sources {
    exit_hook: true,
    ..TRACEPOINTS
};

fn exit(pid: u32) -> Event {
    // SAFETY: a plain-old-data ABI record; all zeroes is a valid value.
    let mut event: VictimExitEvent = unsafe { std::mem::zeroed() };
    event.header.pid = pid;
    Event::VictimExit(event)
}

fn reaper(pid: u32, step: u32) -> Event {
    // SAFETY: as above.
    let mut event: ReaperEvent = unsafe { std::mem::zeroed() };
    event.pid = pid as i32;
    event.step = step;
    Event::Reaper(event)
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// The victim's kill: its mark_victim event and its kill line, read at `at`.
fn killed(builder: &mut Builder, at: Instant) -> u32 {
    let kill = storm_kills().remove(0);
    let pid = kill_pid(&kill);
    builder.on_event(at, mark(pid));
    builder.on_report(at, kill);
    pid
}

#[test]
fn a_complete_decision_goes_out_at_the_first_poll_after_its_victims_exit() {
    let mut builder = Builder::new(TRACEPOINTS_WITH_EXIT, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    let pid = killed(&mut builder, t0);
    builder.on_log_read(t0);
    assert!(
        builder.poll(t0, &mut env).is_empty(),
        "its exit can still come"
    );
    // The exit's wait is a backstop for a victim stuck in the kernel.
    let backstop = builder.next_deadline().expect("a timer while it waits");
    assert!(backstop > t0 && backstop < t0 + DEADLINE);
    let t1 = ms(t0, 7);
    builder.on_event(t1, exit(pid));
    builder.on_log_read(t1);
    let out = builder.poll(t1, &mut env);
    assert_eq!(
        out.len(),
        1,
        "out at the poll of the exit, not after a grace"
    );
    assert_eq!(builder.next_deadline(), None);
}

#[test]
fn a_decision_waits_for_the_log_to_be_read_after_its_last_piece() {
    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    builder.on_log_read(t0);
    let t1 = ms(t0, 1);
    killed(&mut builder, t1);
    assert!(
        builder.poll(t1, &mut env).is_empty(),
        "lines printed before its last piece may still be unread"
    );
    builder.on_log_read(t1);
    assert_eq!(builder.poll(t1, &mut env).len(), 1);
}

#[test]
fn a_woken_oom_reaper_is_awaited_until_its_pass_ends() {
    let mut builder = Builder::new(TRACEPOINTS_WITH_EXIT, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    let pid = killed(&mut builder, t0);
    builder.on_event(t0, reaper(pid, reaper_step::WAKE));
    builder.on_event(t0, exit(pid));
    builder.on_log_read(t0);
    assert!(
        builder.poll(t0, &mut env).is_empty(),
        "the reaper was woken"
    );
    let t1 = ms(t0, 3);
    builder.on_event(t1, reaper(pid, reaper_step::START));
    builder.on_log_read(t1);
    assert!(
        builder.poll(t1, &mut env).is_empty(),
        "the reaper is reaping"
    );
    let t2 = ms(t0, 5);
    builder.on_event(t2, reaper(pid, reaper_step::FINISH));
    builder.on_log_read(t2);
    assert_eq!(builder.poll(t2, &mut env).len(), 1);
}

/// Without the killer's hooks a memory.oom.group sweep has no end event:
/// the one wait that stays a grace, counted from the sweep's last line.
#[test]
fn a_group_sweep_without_the_killers_hooks_settles_after_its_last_line() {
    let path = fixtures()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("oom-group"))
        .expect("an oom.group fixture");
    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    let all = items(&path);
    let victim = all
        .iter()
        .find_map(|i| match i {
            ReportItem::Report(r) => r.kill.as_ref().map(|k| k.pid),
            _ => None,
        })
        .expect("the report's kill line");
    builder.on_event(t0, mark(victim));
    let last = ms(t0, 2);
    for item in all {
        builder.on_report(last, item);
    }
    builder.on_log_read(last);
    assert!(builder.poll(last, &mut env).is_empty());
    assert_eq!(builder.next_deadline(), Some(last + SWEEP_SETTLE));
    let out = builder.poll(last + SWEEP_SETTLE, &mut env);
    assert_eq!(out.len(), 1);
    assert!(out[0].oom_group.is_some() && out[0].killed.len() > 1);
}
