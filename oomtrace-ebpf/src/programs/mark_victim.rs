//! `oom:mark_victim`: the kernel's own summary of the victim, copied from the
//! tracepoint record (field offsets from tracefs). Not filtered here: the
//! record has no cgroup, and the raw tracepoint on the same event (filtered in
//! the kernel) or the kernel report tells the collector the victim's memcg.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use oomtrace_ebpf::{MarkVictimEvent, UNAVAILABLE, kind, mark_victim_field as field};

use super::common::{LAYOUT, global, read_record, reserve, write_header};

#[tracepoint]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    let Some(mut entry) = reserve::<MarkVictimEvent>(kind::MARK_VICTIM) else {
        return 0;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::MARK_VICTIM);
    let mut present = 0u32;
    let mut read_u64 = |offset: u32, bit: u32| -> u64 {
        match read_record::<u64, _>(&ctx, offset) {
            Some(value) => {
                present |= bit;
                value
            }
            None => 0,
        }
    };
    unsafe {
        (*event).total_vm_kb = read_u64(global!(LAYOUT.mark_victim_total_vm), field::TOTAL_VM);
        (*event).anon_rss_kb = read_u64(global!(LAYOUT.mark_victim_anon_rss), field::ANON_RSS);
        (*event).file_rss_kb = read_u64(global!(LAYOUT.mark_victim_file_rss), field::FILE_RSS);
        (*event).shmem_rss_kb = read_u64(global!(LAYOUT.mark_victim_shmem_rss), field::SHMEM_RSS);
        (*event).pgtables_kb = read_u64(global!(LAYOUT.mark_victim_pgtables), field::PGTABLES);
        (*event).pid = read_record::<i32, _>(&ctx, global!(LAYOUT.mark_victim_pid)).unwrap_or(-1);
        (*event).uid = match read_record::<u32, _>(&ctx, global!(LAYOUT.mark_victim_uid)) {
            Some(uid) => {
                present |= field::UID;
                uid
            }
            None => 0,
        };
        (*event).oom_score_adj =
            match read_record::<i16, _>(&ctx, global!(LAYOUT.mark_victim_oom_score_adj)) {
                Some(adj) => {
                    present |= field::OOM_SCORE_ADJ;
                    adj
                }
                None => 0,
            };
        (*event)._pad0 = [0; 2];
        (*event).comm = [0; 16];
        let comm_loc = global!(LAYOUT.mark_victim_comm);
        if comm_loc != UNAVAILABLE
            && let Some(loc) = read_record::<u32, _>(&ctx, comm_loc)
        {
            let src = (ctx_base(&ctx) + (loc & 0xffff) as u64) as *const u8;
            if aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(src, &mut (*event).comm).is_ok() {
                present |= field::COMM;
            }
        }
        (*event).present = present;
    }
    entry.submit(0);
    0
}

#[inline(always)]
fn ctx_base(ctx: &TracePointContext) -> u64 {
    use aya_ebpf::EbpfContext;
    ctx.as_ptr() as u64
}
