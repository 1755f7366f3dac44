//! Decoding ring-buffer records into typed events: bounds-checked, never
//! trusting the kernel's byte count beyond what each record type needs.
use oomtrace_ebpf::{
    ChargeFailureEvent, EventHeader, MarkVictimEvent, MemcgAtLimitEvent, OomCandidateEvent,
    OomChoiceEvent, OomEndEvent, OomWaitEvent, PagefaultOomEvent, ProcessExecEvent, ReaperEvent,
    RssSums, UNAVAILABLE_U64, VictimExitEvent, VictimTaskEvent, kind,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    MarkVictim(MarkVictimEvent),
    VictimTask(Box<VictimTaskEvent>),
    Reaper(ReaperEvent),
    VictimExit(VictimExitEvent),
    OomCandidate(OomCandidateEvent),
    OomChoice(OomChoiceEvent),
    OomEnd(OomEndEvent),
    PagefaultOom(PagefaultOomEvent),
    ChargeFailure(ChargeFailureEvent),
    OomWait(OomWaitEvent),
    MemcgAtLimit(MemcgAtLimitEvent),
    ProcessExec(ProcessExecEvent),
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::MarkVictim(e) => &e.header,
            Event::VictimTask(e) => &e.header,
            Event::Reaper(e) => &e.header,
            Event::VictimExit(e) => &e.header,
            Event::OomCandidate(e) => &e.header,
            Event::OomChoice(e) => &e.header,
            Event::OomEnd(e) => &e.header,
            Event::PagefaultOom(e) => &e.header,
            Event::ChargeFailure(e) => &e.header,
            Event::OomWait(e) => &e.header,
            Event::MemcgAtLimit(e) => &e.header,
            Event::ProcessExec(e) => &e.header,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than an event header")]
    NoHeader { len: usize },
    #[error("record of kind {kind} has {len} bytes, expected at least {need}")]
    Short { kind: u32, len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

/// Copies a `T` out of the front of `bytes`.
///
/// `T` must be one of the ABI's plain-old-data records (integers and byte
/// arrays only), for which every bit pattern is valid.
fn read_pod<T: Copy>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            kind,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: length checked above; the ABI types are repr(C) POD, valid for
    // any bit pattern; read_unaligned copes with the buffer's alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    if bytes.len() < size_of::<EventHeader>() {
        return Err(DecodeError::NoHeader { len: bytes.len() });
    }
    let event_kind = u32::from_ne_bytes(bytes[..4].try_into().expect("4 bytes"));
    match event_kind {
        kind::MARK_VICTIM => read_pod(bytes, event_kind).map(Event::MarkVictim),
        kind::VICTIM_TASK => read_pod(bytes, event_kind).map(|e| Event::VictimTask(Box::new(e))),
        kind::REAPER => read_pod(bytes, event_kind).map(Event::Reaper),
        kind::VICTIM_EXIT => read_pod(bytes, event_kind).map(Event::VictimExit),
        kind::OOM_CANDIDATE => read_pod(bytes, event_kind).map(Event::OomCandidate),
        kind::OOM_CHOICE => read_pod(bytes, event_kind).map(Event::OomChoice),
        kind::OOM_END => read_pod(bytes, event_kind).map(Event::OomEnd),
        kind::PAGEFAULT_OOM => read_pod(bytes, event_kind).map(Event::PagefaultOom),
        kind::CHARGE_FAILURE => read_pod(bytes, event_kind).map(Event::ChargeFailure),
        kind::OOM_WAIT => read_pod(bytes, event_kind).map(Event::OomWait),
        kind::MEMCG_AT_LIMIT => read_pod(bytes, event_kind).map(Event::MemcgAtLimit),
        kind::PROCESS_EXEC => read_pod(bytes, event_kind).map(Event::ProcessExec),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// A kernel `comm` (NUL-padded, not always NUL-terminated) as text.
pub fn comm_str(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// An event as evidence in a dump: every field, comms as text.
pub fn to_json(event: &Event) -> serde_json::Value {
    use serde_json::json;
    let h = event.header();
    let header = json!({
        "kind": kind_name(h.kind),
        "cpu": h.cpu,
        "boot_ns": h.boot_ns,
        "pid": h.pid,
        "tgid": h.tgid,
        "comm": comm_str(&h.comm),
    });
    let body = match event {
        Event::MarkVictim(e) => json!({
            "pid": e.pid,
            "uid": e.uid,
            "comm": comm_str(&e.comm),
            "total_vm_kb": e.total_vm_kb,
            "anon_rss_kb": e.anon_rss_kb,
            "file_rss_kb": e.file_rss_kb,
            "shmem_rss_kb": e.shmem_rss_kb,
            "pgtables_kb": e.pgtables_kb,
            "oom_score_adj": e.oom_score_adj,
            "present_fields": e.present,
        }),
        Event::VictimTask(e) => {
            let chain: Vec<serde_json::Value> = e.memcg
                [..(e.memcg_depth as usize).min(e.memcg.len())]
                .iter()
                .map(|l| {
                    json!({
                        "cgroup_id": l.cgroup_id,
                        "usage_pages": l.usage_pages,
                        "max_pages": l.max_pages,
                        "swap_usage_pages": l.swap_usage_pages,
                        "swap_max_pages": l.swap_max_pages,
                    })
                })
                .collect();
            json!({
                "victim_pid": e.victim_pid,
                "victim_tgid": e.victim_tgid,
                "victim_comm": comm_str(&e.victim_comm),
                "oom_score_adj": e.oom_score_adj,
                "valid": e.valid,
                "rss_file_pages": e.rss_file_pages,
                "rss_anon_pages": e.rss_anon_pages,
                "rss_shmem_pages": e.rss_shmem_pages,
                "swapents": e.swapents,
                "pgtables_bytes": e.pgtables_bytes,
                "total_vm_pages": e.total_vm_pages,
                "trigger_memcg_id": e.trigger_memcg_id,
                "memcg_chain": chain,
                "sums": sums_json(&e.sums),
            })
        }
        Event::Reaper(e) => json!({ "pid": e.pid, "step": e.step }),
        Event::VictimExit(e) => json!({ "marked_boot_ns": e.marked_boot_ns }),
        Event::OomCandidate(e) => json!({
            "oom_seq": e.oom_seq,
            "index": e.index,
            "pid": e.pid,
            "tgid": e.tgid,
            "comm": comm_str(&e.comm),
            "uid": e.uid,
            "oom_score_adj": e.oom_score_adj,
            "points": e.points,
            "flags": e.flags,
            "rss_file_pages": e.rss_file_pages,
            "rss_anon_pages": e.rss_anon_pages,
            "rss_shmem_pages": e.rss_shmem_pages,
            "swapents": e.swapents,
            "pgtables_bytes": e.pgtables_bytes,
            "memcg_id": e.memcg_id,
            "sums": sums_json(&e.sums),
        }),
        Event::OomChoice(e) => json!({
            "oom_seq": e.oom_seq,
            "pid": e.pid,
            "tgid": e.tgid,
            "comm": comm_str(&e.comm),
            "points": e.points,
        }),
        Event::OomEnd(e) => json!({
            "oom_seq": e.oom_seq,
            "memcg_id": e.memcg_id,
            "totalpages": e.totalpages,
            "chosen_points": e.chosen_points,
            "gfp_mask": e.gfp_mask,
            "order": e.order,
            "constraint": e.constraint,
            "chosen": e.chosen,
            "ret": e.ret,
            "candidates": e.candidates,
            "dropped": e.dropped,
        }),
        Event::PagefaultOom(e) => json!({
            "memcg_id": e.memcg_id,
            "in_oom_memcg_id": e.in_oom_memcg_id,
            "flags": e.flags,
        }),
        Event::ChargeFailure(e) => json!({
            "memcg_id": e.memcg_id,
            "usage_pages": e.usage_pages,
            "max_pages": e.max_pages,
            "failures_total": e.failures_total,
            "gfp_mask": e.gfp_mask,
            "order": e.order,
            "reason": e.reason,
        }),
        Event::MemcgAtLimit(e) => json!({
            "memcg_id": e.memcg_id,
            "nr_reclaimed": e.nr_reclaimed,
            "nr_to_reclaim": (e.nr_to_reclaim != UNAVAILABLE_U64).then_some(e.nr_to_reclaim),
            "short_passes": e.short_passes,
        }),
        Event::OomWait(e) => json!({
            "memcg_id": e.memcg_id,
            "phase": e.phase,
            "waited_ns": e.waited_ns,
            "gfp_mask": e.gfp_mask,
            "order": e.order,
        }),
        Event::ProcessExec(_) => json!({}),
    };
    json!({ "header": header, "event": body })
}

/// The per-CPU sums of the rss counters (meaningful with the `RSS_SUM` /
/// `MEMORY_SUM` bit of `valid` / `flags`).
fn sums_json(s: &RssSums) -> serde_json::Value {
    serde_json::json!({
        "rss_file_pages": s.file_pages,
        "rss_anon_pages": s.anon_pages,
        "rss_shmem_pages": s.shmem_pages,
        "swapents": s.swapents,
    })
}

/// Human name of an event kind, for drop counters.
pub fn kind_name(event_kind: u32) -> &'static str {
    match event_kind {
        kind::MARK_VICTIM => "mark_victim",
        kind::VICTIM_TASK => "victim_task",
        kind::REAPER => "reaper",
        kind::VICTIM_EXIT => "victim_exit",
        kind::OOM_CANDIDATE => "oom_candidate",
        kind::OOM_CHOICE => "oom_choice",
        kind::OOM_END => "oom_end",
        kind::PAGEFAULT_OOM => "pagefault_oom",
        kind::CHARGE_FAILURE => "charge_failure",
        kind::OOM_WAIT => "oom_wait",
        kind::MEMCG_AT_LIMIT => "memcg_at_limit",
        kind::PROCESS_EXEC => "process_exec",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: test-only view of a POD value as bytes.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn header(event_kind: u32) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..7].copy_from_slice(b"python3");
        EventHeader {
            kind: event_kind,
            cpu: 1,
            boot_ns: 42,
            pid: 100,
            tgid: 100,
            comm,
        }
    }

    #[test]
    fn decodes_each_kind_round_trip() {
        let mark = MarkVictimEvent {
            header: header(kind::MARK_VICTIM),
            pid: 12621,
            anon_rss_kb: 65024,
            oom_score_adj: -17,
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&mark)), Ok(Event::MarkVictim(mark)));

        let mut task = VictimTaskEvent {
            header: header(kind::VICTIM_TASK),
            victim_pid: 7,
            rss_anon_pages: 16256,
            memcg_depth: 2,
            ..Default::default()
        };
        task.memcg[1].max_pages = 16384;
        assert_eq!(
            decode(&bytes_of(&task)),
            Ok(Event::VictimTask(Box::new(task)))
        );

        let reaper = ReaperEvent {
            header: header(kind::REAPER),
            pid: 9,
            step: 3,
        };
        assert_eq!(decode(&bytes_of(&reaper)), Ok(Event::Reaper(reaper)));

        let exit = VictimExitEvent {
            header: header(kind::VICTIM_EXIT),
            marked_boot_ns: 5,
        };
        assert_eq!(decode(&bytes_of(&exit)), Ok(Event::VictimExit(exit)));

        let candidate = OomCandidateEvent {
            header: header(kind::OOM_CANDIDATE),
            oom_seq: 77,
            pid: 12,
            points: i64::MIN,
            index: 3,
            ..Default::default()
        };
        assert_eq!(
            decode(&bytes_of(&candidate)),
            Ok(Event::OomCandidate(candidate))
        );
        let choice = OomChoiceEvent {
            header: header(kind::OOM_CHOICE),
            oom_seq: 77,
            pid: 12,
            points: 900,
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&choice)), Ok(Event::OomChoice(choice)));
        let end = OomEndEvent {
            header: header(kind::OOM_END),
            oom_seq: 77,
            totalpages: 16384,
            candidates: 4,
            dropped: 1,
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&end)), Ok(Event::OomEnd(end)));
        let fault = PagefaultOomEvent {
            header: header(kind::PAGEFAULT_OOM),
            memcg_id: 9,
            in_oom_memcg_id: 9,
            flags: oomtrace_ebpf::pagefault_flag::IN_OOM_KNOWN,
            _pad0: 0,
        };
        assert_eq!(decode(&bytes_of(&fault)), Ok(Event::PagefaultOom(fault)));
        let failure = ChargeFailureEvent {
            header: header(kind::CHARGE_FAILURE),
            memcg_id: 4242,
            usage_pages: 16384,
            max_pages: 16384,
            failures_total: 7,
            gfp_mask: 0xcc0,
            order: 0,
            reason: oomtrace_ebpf::charge_failure_reason::NO_VICTIM,
            nr_pages: 0,
        };
        assert_eq!(
            decode(&bytes_of(&failure)),
            Ok(Event::ChargeFailure(failure))
        );
        let wait = OomWaitEvent {
            header: header(kind::OOM_WAIT),
            memcg_id: 4242,
            waited_ns: 1_500_000_000,
            phase: oomtrace_ebpf::oom_wait_phase::END,
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&wait)), Ok(Event::OomWait(wait)));
        let at_limit = MemcgAtLimitEvent {
            header: header(kind::MEMCG_AT_LIMIT),
            memcg_id: 4242,
            nr_reclaimed: 3,
            nr_to_reclaim: 512,
            short_passes: 7,
        };
        assert_eq!(
            decode(&bytes_of(&at_limit)),
            Ok(Event::MemcgAtLimit(at_limit))
        );
        // One byte short of either is refused, not read past its end.
        for (bytes, need) in [
            (bytes_of(&failure), size_of::<ChargeFailureEvent>()),
            (bytes_of(&wait), size_of::<OomWaitEvent>()),
        ] {
            assert!(matches!(
                decode(&bytes[..need - 1]),
                Err(DecodeError::Short { .. })
            ));
        }
    }

    #[test]
    fn decode_accepts_ring_buffer_padding() {
        let reaper = ReaperEvent {
            header: header(kind::REAPER),
            pid: 9,
            step: 1,
        };
        let mut bytes = bytes_of(&reaper);
        bytes.extend_from_slice(&[0xAA; 8]);
        assert_eq!(decode(&bytes), Ok(Event::Reaper(reaper)));
    }

    #[test]
    fn decode_rejects_short_and_unknown_records() {
        assert_eq!(decode(&[1, 0, 0]), Err(DecodeError::NoHeader { len: 3 }));
        let mut bytes = bytes_of(&header(kind::VICTIM_TASK));
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::Short {
                kind: kind::VICTIM_TASK,
                len: 56,
                need: size_of::<VictimTaskEvent>()
            })
        );
        let unknown = bytes_of(&header(99));
        assert_eq!(decode(&unknown), Err(DecodeError::UnknownKind(99)));
    }

    #[test]
    fn comm_without_terminator_is_kept_whole() {
        assert_eq!(comm_str(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(comm_str(b"hog\0\0garbage\0\0\0\0"), "hog");
    }
}
