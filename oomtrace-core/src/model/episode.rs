//! OOM episodes: the records of one memcg's OOM share an `oom_id`, so a log
//! store can group them.
//!
//! An episode belongs to one memcg (the one whose limit was hit; `/` for a
//! global OOM). It opens with the first record of that memcg — a charge
//! failure, a stall, or the decision itself — and closes with its decision
//! (a kill), with the end of a stall (`released`, `gone`), or after
//! [`QUIET_MS`] without any record of that memcg (charge failures that never
//! led to a kill) unless a stall holds it open (a stall prints nothing
//! between its start and its end). The next record of the memcg opens a new
//! episode; the end of a stall that the kill released, reported just after
//! the kill's decision, still joins the kill's episode.
//!
//! The id is `<boot id, 8 hex>-<memcg, 8 hex>-<boot time of the episode's
//! first record, ms>`: unique across a node's boots (the boot id), per
//! memcg (a hash of its path, which stays nameable after the memcg is
//! removed), and per episode (an episode opened in the same millisecond as
//! the previous one is moved 1 ms later). Dumps keep the decision's id as it was written.
//! Decisions rebuilt from a saved kernel log get `log-<memcg>-<kernel
//! time, ms>` (one episode per report: the log knows no boot id).
use std::collections::HashMap;

use crate::model::decision::Decision;

/// An episode without records for this long is over.
pub const QUIET_MS: u64 = 10_000;

struct Open {
    id: String,
    last_ms: u64,
    /// A stall is under way: no quiet period ends the episode.
    held: bool,
}

/// Open episodes per memcg, in the live session.
pub struct Episodes {
    boot: String,
    open: HashMap<String, Open>,
    /// Episodes closed less than [`QUIET_MS`] ago: the end of a stall that
    /// the kill itself released is reported after the kill's decision.
    closed: HashMap<String, Open>,
    /// The last episode's start: each new one starts at least 1 ms later,
    /// so that kills of one memcg emitted together still get ids of their own.
    last_start: u64,
}

impl Episodes {
    /// `boot_id`: `/proc/sys/kernel/random/boot_id` (null: unreadable).
    pub fn new(boot_id: Option<&str>) -> Self {
        let boot: String = boot_id
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        Self {
            boot: if boot.is_empty() {
                "noboot".to_owned()
            } else {
                boot
            },
            open: HashMap::new(),
            closed: HashMap::new(),
            last_start: 0,
        }
    }

    /// The id of the memcg's episode at `now_ms` (boot time), opening one if
    /// none is open or the open one has been quiet for [`QUIET_MS`].
    pub fn id(&mut self, memcg: Option<&str>, now_ms: u64) -> String {
        self.expire(now_ms);
        let memcg = memcg_key(memcg);
        let (boot, last_start) = (&self.boot, &mut self.last_start);
        let open = self.open.entry(memcg.to_owned()).or_insert_with(|| {
            let start = now_ms.max(*last_start + 1);
            *last_start = start;
            Open {
                id: format!("{boot}-{:08x}-{start}", path_hash(memcg)),
                last_ms: now_ms,
                held: false,
            }
        });
        open.last_ms = now_ms;
        open.id.clone()
    }

    /// The id of a stall's start: the episode stays open until its end.
    pub fn hold(&mut self, memcg: Option<&str>, now_ms: u64) -> String {
        let id = self.id(memcg, now_ms);
        if let Some(open) = self.open.get_mut(memcg_key(memcg)) {
            open.held = true;
        }
        id
    }

    /// The id of a record that ends its episode: a decision (the kill).
    pub fn close(&mut self, memcg: Option<&str>, now_ms: u64) -> String {
        let id = self.id(memcg, now_ms);
        let key = memcg_key(memcg);
        if let Some(mut open) = self.open.remove(key) {
            open.held = false;
            open.last_ms = now_ms;
            self.closed.insert(key.to_owned(), open);
        }
        id
    }

    /// The id of a stall's end (`released`, `gone`): the episode the kill
    /// that released it just closed, else the open one, which it closes.
    pub fn end_stall(&mut self, memcg: Option<&str>, now_ms: u64) -> String {
        self.expire(now_ms);
        let key = memcg_key(memcg);
        if !self.open.contains_key(key)
            && let Some(closed) = self.closed.get(key)
        {
            return closed.id.clone();
        }
        self.close(memcg, now_ms)
    }

    /// The decision's id; its memcg is the one whose limit fired.
    pub fn decision(&mut self, decision: &mut Decision, now_ms: u64) {
        let id = self.close(decision_memcg(decision), now_ms);
        decision.oom_id = Some(id);
    }

    /// Episodes quiet for [`QUIET_MS`] are over; also bounds the map.
    fn expire(&mut self, now_ms: u64) {
        for map in [&mut self.open, &mut self.closed] {
            map.retain(|_, open| open.held || now_ms.saturating_sub(open.last_ms) < QUIET_MS);
        }
    }
}

/// The id of a decision rebuilt from a saved kernel log (one report, one
/// episode), kept if it already has one (a dump, saved `--json` output).
pub fn offline_id(decision: &mut Decision) {
    if decision.oom_id.is_some() {
        return;
    }
    let memcg = path_hash(memcg_key(decision_memcg(decision)));
    let id = match decision.kernel_seconds {
        Some(seconds) => format!("log-{memcg:08x}-{}", (seconds * 1000.0) as u64),
        None => format!("log-{memcg:08x}-seq{}", decision.seq),
    };
    decision.oom_id = Some(id);
}

fn decision_memcg(decision: &Decision) -> Option<&str> {
    decision.oom_memcg.as_ref().and_then(|m| m.path.as_deref())
}

fn memcg_key(memcg: Option<&str>) -> &str {
    match memcg {
        Some(path) if !path.is_empty() => path,
        _ => "/",
    }
}

/// FNV-1a, folded to 32 bits: stable across runs and builds (unlike std's hasher).
fn path_hash(path: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash ^ (hash >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "3f2a9c1e-77d0-4b4e-9a0b-0123456789ab";

    #[test]
    fn records_of_one_memcg_share_an_id_until_the_decision() {
        let mut episodes = Episodes::new(Some(BOOT));
        let first = episodes.id(Some("/a"), 1_000);
        assert!(first.starts_with("3f2a9c1e-"), "{first}");
        assert!(first.ends_with("-1000"), "{first}");
        assert_eq!(episodes.id(Some("/a"), 1_500), first);
        assert_ne!(episodes.id(Some("/b"), 1_600), first);
        assert_eq!(episodes.close(Some("/a"), 2_000), first);
        let next = episodes.id(Some("/a"), 2_001);
        assert_ne!(next, first);
        assert!(next.ends_with("-2001"), "{next}");
    }

    #[test]
    fn a_stall_released_by_the_kill_ends_in_the_kills_episode() {
        let mut episodes = Episodes::new(Some(BOOT));
        let stalled = episodes.id(Some("/a"), 1_000);
        assert_eq!(episodes.close(Some("/a"), 3_000), stalled, "the decision");
        assert_eq!(
            episodes.end_stall(Some("/a"), 3_500),
            stalled,
            "the release"
        );
        let next = episodes.id(Some("/a"), 4_000);
        assert_ne!(next, stalled, "a new charge failure opens the next one");
        let far = 4_000 + QUIET_MS;
        assert_ne!(episodes.end_stall(Some("/b"), far), next);
        assert_ne!(episodes.end_stall(Some("/a"), far + 1), stalled);
    }

    #[test]
    fn each_kill_is_an_episode_of_its_own() {
        let mut episodes = Episodes::new(Some(BOOT));
        let first = episodes.close(Some("/a"), 1_000);
        let second = episodes.close(Some("/a"), 1_200);
        assert_ne!(first, second, "a crash loop: two kills, two episodes");
        let third = episodes.close(Some("/a"), 1_200);
        assert_ne!(second, third, "two kills emitted in the same millisecond");
    }

    #[test]
    fn a_long_stall_holds_its_episode_open() {
        let mut episodes = Episodes::new(Some(BOOT));
        let stalled = episodes.hold(Some("/a"), 1_000);
        let later = 1_000 + 60 * QUIET_MS;
        assert_eq!(episodes.id(Some("/a"), later), stalled, "a failed charge");
        assert_eq!(
            episodes.end_stall(Some("/a"), later + 1),
            stalled,
            "released"
        );
        assert_ne!(episodes.id(Some("/a"), later + 2 + QUIET_MS), stalled);
    }

    #[test]
    fn a_quiet_episode_ends() {
        let mut episodes = Episodes::new(Some(BOOT));
        let first = episodes.id(Some("/a"), 1_000);
        assert_eq!(episodes.id(Some("/a"), 1_000 + QUIET_MS - 1), first);
        let later = episodes.id(Some("/a"), 1_000 + 2 * QUIET_MS);
        assert_ne!(later, first);
    }

    #[test]
    fn the_memcg_part_is_stable_and_global_is_root() {
        let mut one = Episodes::new(Some(BOOT));
        let mut two = Episodes::new(Some("ffffffff-0000"));
        let a = one.id(Some("/kubepods/pod1"), 5);
        let b = two.id(Some("/kubepods/pod1"), 5);
        assert_eq!(a.split('-').nth(1), b.split('-').nth(1));
        assert_ne!(a, b, "another boot, another id");
        assert_eq!(one.id(None, 6), one.id(Some("/"), 7));
        assert!(Episodes::new(None).id(None, 1).starts_with("noboot-"));
    }
}
