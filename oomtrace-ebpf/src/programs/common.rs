//! Maps, globals and helpers shared by every hook.
use aya_ebpf::helpers::generated::bpf_get_smp_processor_id;
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel,
    },
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use oomtrace_ebpf::{
    Config, EventHeader, KernelOffsets, MemcgReclaimStats, ReclaimStart, TracepointLayout,
    UNAVAILABLE, kind,
};

/// Kernel struct offsets, filled from BTF by the collector before load.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::UNRESOLVED;
/// Tracepoint record layouts, filled from tracefs by the collector before load.
#[unsafe(no_mangle)]
pub static LAYOUT: TracepointLayout = TracepointLayout::UNRESOLVED;
#[unsafe(no_mangle)]
pub static CONFIG: Config = Config {
    filter_enabled: 0,
    raw_mark_victim_has_task: 0,
};

/// All events for the collector. 1 MiB holds thousands of records: OOM events are rare.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);
/// Failed ring-buffer reserves, per event kind and CPU.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(kind::COUNT, 0);
/// cgroup ids given with `--cgroup`: a memcg is in scope if it or an ancestor is here.
#[map]
pub static CGROUP_FILTER: HashMap<u64, u8> = HashMap::with_max_entries(1024, 0);
/// Tasks marked as OOM victims (tid -> boot_ns of the mark), to report their exit.
#[map]
pub static VICTIMS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(4096, 0);
/// Reclaim pass in progress, per tid.
#[map]
pub static RECLAIM_START: LruHashMap<u32, ReclaimStart> = LruHashMap::with_max_entries(8192, 0);
/// Reclaim statistics per memcg (cgroup id).
#[map]
pub static RECLAIM_STATS: LruHashMap<u64, MemcgReclaimStats> =
    LruHashMap::with_max_entries(4096, 0);

/// Reads one global field without letting the compiler constant-fold the
/// placeholder value the object was built with.
macro_rules! global {
    ($global:ident . $field:ident) => {{
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&raw const $global.$field) };
        value
    }};
}
pub(crate) use global;

/// Reads a `T` at `base + offset`, zero when the offset is unavailable or the
/// read faults. Branch-free on purpose: the helper zeroes its destination on
/// failure, so older verifiers (5.10) do not explore a path per read.
#[inline(always)]
pub fn read_or_zero<T: Copy>(base: u64, offset: u32) -> T {
    let mut value = core::mem::MaybeUninit::<T>::zeroed();
    if offset != UNAVAILABLE {
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                value.as_mut_ptr().cast(),
                core::mem::size_of::<T>() as u32,
                (base + offset as u64) as *const core::ffi::c_void,
            );
        }
    }
    // SAFETY: zeroed, then possibly overwritten by the kernel: a valid
    // bit pattern for the integer and byte-array types read this way.
    unsafe { value.assume_init() }
}

/// Reads a `T` from a tracepoint record at a tracefs-resolved offset.
#[inline(always)]
pub fn read_record<T, C: EbpfContext>(ctx: &C, offset: u32) -> Option<T> {
    if offset == UNAVAILABLE {
        return None;
    }
    let base = ctx.as_ptr() as u64;
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

pub fn count_drop(event_kind: u32) {
    if let Some(counter) = DROPS.get_ptr_mut(event_kind) {
        unsafe { *counter += 1 };
    }
}

/// Reserves a record in `EVENTS`, counting the drop when the ring is full.
#[inline(always)]
pub fn reserve<T: 'static>(event_kind: u32) -> Option<aya_ebpf::maps::ring_buf::RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count_drop(event_kind);
    }
    entry
}

/// Fills a header in place for the current task.
#[inline(always)]
pub fn write_header(header: *mut EventHeader, event_kind: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    unsafe {
        (*header).kind = event_kind;
        (*header).cpu = bpf_get_smp_processor_id();
        (*header).boot_ns = bpf_ktime_get_boot_ns();
        (*header).pid = pid_tgid as u32;
        (*header).tgid = (pid_tgid >> 32) as u32;
        (*header).comm = bpf_get_current_comm().unwrap_or([0; 16]);
    }
}
