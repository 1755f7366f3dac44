//! Tracepoint record layouts from tracefs.
//!
//! The kernel describes each tracepoint's record in
//! `<tracefs>/events/<system>/<event>/format`. The collector reads the fields
//! the programs use, checks their sizes against what the programs read, and
//! hands the offsets over as the `LAYOUT` global ([`TracepointLayout`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use oomtrace_ebpf::TracepointLayout;

/// Where tracefs is normally mounted, then its legacy place under debugfs.
const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Errors locating tracefs or reading a format file.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (no events/ under {}); mount it with: mount -t tracefs nodev /sys/kernel/tracing",
        tried.join(" or ")
    )]
    NotMounted { tried: Vec<String> },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad tracepoint format line {line_no} `{line}`: {reason}")]
    Parse {
        line_no: usize,
        line: String,
        reason: String,
    },
    #[error("{} has no field lines", path.display())]
    Empty { path: PathBuf },
}

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatField {
    /// Field name without array suffix (`comm` for `char comm[16]`).
    pub name: String,
    /// The declaration without the name: `int`, `__data_loc char[]`, `char[16]`.
    pub type_decl: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

impl FormatField {
    /// `__data_loc` (or `__rel_loc`) field: a u32 `length << 16 | offset`.
    pub fn is_data_loc(&self) -> bool {
        self.type_decl.starts_with("__data_loc") || self.type_decl.starts_with("__rel_loc")
    }
}

/// The filled layout and what this kernel lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutReport {
    pub layout: TracepointLayout,
    /// `system/event` of events whose format file does not exist (their fields
    /// are not listed again in `missing_fields`).
    pub missing_events: Vec<String>,
    /// `system/event.field` of fields absent from an existing event, or
    /// present with a size/type the programs cannot read (then with the reason:
    /// `oom/mark_victim.pid (size 2, expected 4)`).
    pub missing_fields: Vec<String>,
    /// Size in bytes of `vmscan/mm_vmscan_memcg_reclaim_begin.gfp_flags`: 8
    /// (`unsigned long`, 6.x) or 4 (`gfp_t`, older kernels); 0 when unavailable.
    pub reclaim_begin_gfp_flags_size: u32,
}

/// The tracefs mount point: `/sys/kernel/tracing` if it has `events/`, else
/// `/sys/kernel/debug/tracing`.
pub fn tracefs_root() -> Result<PathBuf, TracefsError> {
    let candidates: Vec<&Path> = TRACEFS_CANDIDATES.iter().map(Path::new).collect();
    tracefs_root_in(&candidates)
}

fn tracefs_root_in(candidates: &[&Path]) -> Result<PathBuf, TracefsError> {
    candidates
        .iter()
        .find(|root| root.join("events").is_dir())
        .map(|root| root.to_path_buf())
        .ok_or_else(|| TracefsError::NotMounted {
            tried: candidates.iter().map(|p| p.display().to_string()).collect(),
        })
}

fn format_path(root: &Path, system: &str, event: &str) -> PathBuf {
    root.join("events").join(system).join(event).join("format")
}

/// Whether tracepoint `system:event` exists on this kernel.
pub fn event_exists(root: &Path, system: &str, event: &str) -> bool {
    format_path(root, system, event).is_file()
}

/// Parses the text of a format file into its fields (common ones included).
pub fn parse_format(text: &str) -> Result<Vec<FormatField>, TracefsError> {
    let mut fields = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if !line.starts_with("field:") {
            continue;
        }
        let err = |reason: &str| TracefsError::Parse {
            line_no: i + 1,
            line: line.to_string(),
            reason: reason.to_string(),
        };
        let (mut decl, mut offset, mut size, mut signed) = (None, None, None, None);
        for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| err("expected key:value"))?;
            let number = || value.trim().parse::<u32>().map_err(|_| err("bad number"));
            match key.trim() {
                "field" => decl = Some(value.trim()),
                "offset" => offset = Some(number()?),
                "size" => size = Some(number()?),
                "signed" => signed = Some(number()? != 0),
                _ => {} // Unknown keys from future kernels are ignored.
            }
        }
        let decl = decl.ok_or_else(|| err("no declaration"))?;
        let (type_decl, name) = split_decl(decl).ok_or_else(|| err("no field name"))?;
        fields.push(FormatField {
            name,
            type_decl,
            offset: offset.ok_or_else(|| err("no offset"))?,
            size: size.ok_or_else(|| err("no size"))?,
            // `signed:` appeared in 2.6.32; absent means unknown, taken as unsigned.
            signed: signed.unwrap_or(false),
        });
    }
    Ok(fields)
}

/// Splits `unsigned long total_vm` into (`unsigned long`, `total_vm`),
/// `char comm[16]` into (`char[16]`, `comm`), `__data_loc char[] comm` into
/// (`__data_loc char[]`, `comm`), `const char * name` into (`const char *`, `name`).
fn split_decl(decl: &str) -> Option<(String, String)> {
    let (head, last) = match decl.rfind([' ', '\t', '*']) {
        Some(i) => (&decl[..=i], &decl[i + 1..]),
        None => ("", decl),
    };
    let (name, array) = match last.find('[') {
        Some(i) => (&last[..i], &last[i..]),
        None => (last, ""),
    };
    let is_ident = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_ident || head.trim().is_empty() {
        return None;
    }
    Some((format!("{}{array}", head.trim_end()), name.to_string()))
}

/// What the programs read from a field.
#[derive(Clone, Copy)]
enum Want {
    /// An integer of this many bytes.
    Size(u32),
    /// Either of these sizes (recorded in the report).
    SizeOneOf(&'static [u32]),
    /// A `__data_loc` string descriptor (u32).
    DataLoc,
}

struct Wanted {
    system: &'static str,
    event: &'static str,
    field: &'static str,
    want: Want,
    slot: fn(&mut TracepointLayout) -> &mut u32,
}

macro_rules! wanted {
    ($system:literal, $event:literal, $field:literal, $want:expr, $slot:ident) => {
        Wanted {
            system: $system,
            event: $event,
            field: $field,
            want: $want,
            slot: |l| &mut l.$slot,
        }
    };
}

/// Every field of [`TracepointLayout`], with what the programs read from it.
const WANTED: &[Wanted] = &[
    wanted!("oom", "mark_victim", "pid", Want::Size(4), mark_victim_pid),
    wanted!(
        "oom",
        "mark_victim",
        "comm",
        Want::DataLoc,
        mark_victim_comm
    ),
    wanted!(
        "oom",
        "mark_victim",
        "total_vm",
        Want::Size(8),
        mark_victim_total_vm
    ),
    wanted!(
        "oom",
        "mark_victim",
        "anon_rss",
        Want::Size(8),
        mark_victim_anon_rss
    ),
    wanted!(
        "oom",
        "mark_victim",
        "file_rss",
        Want::Size(8),
        mark_victim_file_rss
    ),
    wanted!(
        "oom",
        "mark_victim",
        "shmem_rss",
        Want::Size(8),
        mark_victim_shmem_rss
    ),
    wanted!("oom", "mark_victim", "uid", Want::Size(4), mark_victim_uid),
    wanted!(
        "oom",
        "mark_victim",
        "pgtables",
        Want::Size(8),
        mark_victim_pgtables
    ),
    wanted!(
        "oom",
        "mark_victim",
        "oom_score_adj",
        Want::Size(2),
        mark_victim_oom_score_adj
    ),
    wanted!("oom", "wake_reaper", "pid", Want::Size(4), wake_reaper_pid),
    wanted!(
        "oom",
        "start_task_reaping",
        "pid",
        Want::Size(4),
        start_task_reaping_pid
    ),
    wanted!(
        "oom",
        "finish_task_reaping",
        "pid",
        Want::Size(4),
        finish_task_reaping_pid
    ),
    wanted!(
        "oom",
        "skip_task_reaping",
        "pid",
        Want::Size(4),
        skip_task_reaping_pid
    ),
    wanted!(
        "vmscan",
        "mm_vmscan_memcg_reclaim_begin",
        "order",
        Want::Size(4),
        reclaim_begin_order
    ),
    wanted!(
        "vmscan",
        "mm_vmscan_memcg_reclaim_begin",
        "gfp_flags",
        Want::SizeOneOf(&[8, 4]),
        reclaim_begin_gfp_flags
    ),
    wanted!(
        "vmscan",
        "mm_vmscan_memcg_reclaim_end",
        "nr_reclaimed",
        Want::Size(8),
        reclaim_end_nr_reclaimed
    ),
];

// Every offset slot of the layout has an entry (the last two u32s are the
// gfp_flags size and padding).
const _: () = assert!(WANTED.len() == std::mem::size_of::<TracepointLayout>() / 4 - 2);

/// Reads the format files under `root` (see [`tracefs_root`]) and fills a
/// [`TracepointLayout`]. Absent events and fields are reported, not errors;
/// an unreadable or unparsable format file is an error.
pub fn read_layout(root: &Path) -> Result<LayoutReport, TracefsError> {
    layout_from(|system, event| {
        let path = format_path(root, system, event);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let fields = parse_format(&text)?;
                if fields.is_empty() {
                    return Err(TracefsError::Empty { path });
                }
                Ok(Some(fields))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TracefsError::Read { path, source }),
        }
    })
}

/// An event's fields, `None` when the event does not exist.
type EventFields = Option<Vec<FormatField>>;

/// [`read_layout`] with the format source abstracted: `formats(system, event)`
/// gives the event's fields, or `None` if the event does not exist.
fn layout_from(
    mut formats: impl FnMut(&str, &str) -> Result<EventFields, TracefsError>,
) -> Result<LayoutReport, TracefsError> {
    let mut report = LayoutReport {
        layout: TracepointLayout::UNRESOLVED,
        missing_events: Vec::new(),
        missing_fields: Vec::new(),
        reclaim_begin_gfp_flags_size: 0,
    };
    let mut cache: Vec<((&str, &str), EventFields)> = Vec::new();
    for w in WANTED {
        let key = (w.system, w.event);
        if !cache.iter().any(|(k, _)| *k == key) {
            let fields = formats(w.system, w.event)?;
            if fields.is_none() {
                report
                    .missing_events
                    .push(format!("{}/{}", w.system, w.event));
            }
            cache.push((key, fields));
        }
        let Some((_, Some(fields))) = cache.iter().find(|(k, _)| *k == key) else {
            continue; // Whole event missing: already reported.
        };
        let name = format!("{}/{}.{}", w.system, w.event, w.field);
        let Some(f) = fields.iter().find(|f| f.name == w.field) else {
            report.missing_fields.push(name);
            continue;
        };
        let problem = match w.want {
            Want::Size(n) if f.size != n => Some(format!("size {}, expected {n}", f.size)),
            Want::Size(_) if f.is_data_loc() => Some("is a __data_loc, expected an integer".into()),
            Want::SizeOneOf(ns) if !ns.contains(&f.size) => {
                Some(format!("size {}, expected one of {ns:?}", f.size))
            }
            Want::DataLoc if !f.is_data_loc() || f.size != 4 => Some(format!(
                "`{} {}` (size {}), expected a 4-byte __data_loc",
                f.type_decl, f.name, f.size
            )),
            _ => None,
        };
        if let Some(why) = problem {
            report.missing_fields.push(format!("{name} ({why})"));
            continue;
        }
        *(w.slot)(&mut report.layout) = f.offset;
        if w.field == "gfp_flags" {
            report.reclaim_begin_gfp_flags_size = f.size;
            report.layout.reclaim_begin_gfp_flags_size = f.size;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_ebpf::UNAVAILABLE;

    /// `oom/mark_victim` format as this 6.18 kernel prints it.
    const MARK_VICTIM_6_18: &str = "name: mark_victim
ID: 609
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;
\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;
\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;
\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;

print fmt: \"pid=%d comm=%s total-vm=%lukB anon-rss=%lukB file-rss:%lukB shmem-rss:%lukB uid=%u pgtables=%lukB oom_score_adj=%hd\", REC->pid, __get_str(comm), REC->total_vm, REC->anon_rss, REC->file_rss, REC->shmem_rss, REC->uid, REC->pgtables, REC->oom_score_adj
";

    /// `oom/mark_victim` on 5.10: the pid only.
    const MARK_VICTIM_5_10: &str = "name: mark_victim
ID: 470
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;

print fmt: \"pid=%d\", REC->pid
";

    const PID_ONLY: &str = "format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
";

    /// 5.10's reclaim_begin: `gfp_t gfp_flags` is 4 bytes.
    const RECLAIM_BEGIN_5_10: &str = "format:
\tfield:int order;\toffset:8;\tsize:4;\tsigned:1;
\tfield:gfp_t gfp_flags;\toffset:12;\tsize:4;\tsigned:0;
";

    const RECLAIM_END: &str = "format:
\tfield:unsigned long nr_reclaimed;\toffset:8;\tsize:8;\tsigned:0;
";

    fn field(fields: &[FormatField], name: &str) -> FormatField {
        fields.iter().find(|f| f.name == name).cloned().unwrap()
    }

    fn fake(
        mark_victim: &'static str,
        reclaim_begin: &'static str,
    ) -> impl FnMut(&str, &str) -> Result<EventFields, TracefsError> {
        move |system, event| {
            let text = match (system, event) {
                ("oom", "mark_victim") => mark_victim,
                ("oom", _) => PID_ONLY,
                ("vmscan", "mm_vmscan_memcg_reclaim_begin") => reclaim_begin,
                ("vmscan", "mm_vmscan_memcg_reclaim_end") => RECLAIM_END,
                _ => return Ok(None),
            };
            if text.is_empty() {
                return Ok(None);
            }
            parse_format(text).map(Some)
        }
    }

    #[test]
    fn parses_mark_victim_6_18() {
        let fields = parse_format(MARK_VICTIM_6_18).unwrap();
        assert_eq!(fields.len(), 13);
        assert_eq!(
            field(&fields, "pid"),
            FormatField {
                name: "pid".into(),
                type_decl: "int".into(),
                offset: 8,
                size: 4,
                signed: true
            }
        );
        let comm = field(&fields, "comm");
        assert_eq!(
            (comm.type_decl.as_str(), comm.offset, comm.size, comm.signed),
            ("__data_loc char[]", 12, 4, false)
        );
        assert!(comm.is_data_loc());
        let pg = field(&fields, "pgtables");
        assert_eq!(
            (pg.type_decl.as_str(), pg.offset, pg.size),
            ("unsigned long", 56, 8)
        );
        let adj = field(&fields, "oom_score_adj");
        assert_eq!(
            (adj.type_decl.as_str(), adj.offset, adj.size, adj.signed),
            ("short", 64, 2, true)
        );
        assert_eq!(field(&fields, "common_pid").offset, 4);
    }

    #[test]
    fn parses_declaration_shapes() {
        let text = "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:const char * name;\toffset:24;\tsize:8;\tsigned:0;
\tfield:void *ptr;\toffset:32;\tsize:8;\tsigned:0;
\tfield:__rel_loc u8[] buf;\toffset:40;\tsize:4;
";
        let f = parse_format(text).unwrap();
        assert_eq!(
            (f[0].name.as_str(), f[0].type_decl.as_str(), f[0].size),
            ("comm", "char[16]", 16)
        );
        assert!(!f[0].is_data_loc());
        assert_eq!(
            (f[1].name.as_str(), f[1].type_decl.as_str()),
            ("name", "const char *")
        );
        assert_eq!(
            (f[2].name.as_str(), f[2].type_decl.as_str()),
            ("ptr", "void *")
        );
        assert_eq!((f[3].name.as_str(), f[3].signed), ("buf", false));
        assert!(f[3].is_data_loc());
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "field:int pid;\toffset:x;\tsize:4;",
            "field:int pid;\tsize:4;",
            "field:int pid;\toffset:8;",
            "field:int;\toffset:8;\tsize:4;",
            "field:int 9x;\toffset:8;\tsize:4;",
            "field:int pid;\toffset 8;\tsize:4;",
        ] {
            let err = parse_format(bad).unwrap_err();
            assert!(
                matches!(err, TracefsError::Parse { line_no: 1, .. }),
                "{bad}: {err}"
            );
        }
        assert!(parse_format("name: x\nformat:\n").unwrap().is_empty());
    }

    #[test]
    fn layout_6_18() {
        let r = layout_from(fake(
            MARK_VICTIM_6_18,
            "format:
\tfield:int order;\toffset:8;\tsize:4;\tsigned:1;
\tfield:unsigned long gfp_flags;\toffset:16;\tsize:8;\tsigned:0;
",
        ))
        .unwrap();
        assert!(
            r.missing_events.is_empty() && r.missing_fields.is_empty(),
            "{r:?}"
        );
        let l = r.layout;
        assert_eq!(
            [
                l.mark_victim_pid,
                l.mark_victim_comm,
                l.mark_victim_total_vm,
                l.mark_victim_anon_rss,
                l.mark_victim_file_rss,
                l.mark_victim_shmem_rss,
                l.mark_victim_uid,
                l.mark_victim_pgtables,
                l.mark_victim_oom_score_adj
            ],
            [8, 12, 16, 24, 32, 40, 48, 56, 64]
        );
        assert_eq!(
            (
                l.reclaim_begin_order,
                l.reclaim_begin_gfp_flags,
                l.reclaim_end_nr_reclaimed
            ),
            (8, 16, 8)
        );
        assert_eq!(r.reclaim_begin_gfp_flags_size, 8);
        assert_eq!(l.wake_reaper_pid, 8);
    }

    #[test]
    fn layout_5_10_mark_victim_has_only_pid() {
        let r = layout_from(fake(MARK_VICTIM_5_10, RECLAIM_BEGIN_5_10)).unwrap();
        let l = r.layout;
        assert_eq!(l.mark_victim_pid, 8);
        for v in [
            l.mark_victim_comm,
            l.mark_victim_total_vm,
            l.mark_victim_anon_rss,
            l.mark_victim_file_rss,
            l.mark_victim_shmem_rss,
            l.mark_victim_uid,
            l.mark_victim_pgtables,
            l.mark_victim_oom_score_adj,
        ] {
            assert_eq!(v, UNAVAILABLE);
        }
        let expected: Vec<String> = [
            "comm",
            "total_vm",
            "anon_rss",
            "file_rss",
            "shmem_rss",
            "uid",
            "pgtables",
            "oom_score_adj",
        ]
        .iter()
        .map(|f| format!("oom/mark_victim.{f}"))
        .collect();
        assert_eq!(r.missing_fields, expected);
        assert!(r.missing_events.is_empty());
        // 4-byte gfp_t is accepted and its size recorded.
        assert_eq!(
            (l.reclaim_begin_gfp_flags, r.reclaim_begin_gfp_flags_size),
            (12, 4)
        );
    }

    #[test]
    fn missing_events_and_wrong_sizes() {
        let odd = "format:
\tfield:short pid;\toffset:8;\tsize:2;\tsigned:1;
\tfield:char comm[16];\toffset:10;\tsize:16;\tsigned:0;
";
        let r = layout_from(fake(odd, "")).unwrap();
        assert_eq!(r.missing_events, ["vmscan/mm_vmscan_memcg_reclaim_begin"]);
        assert_eq!(r.layout.mark_victim_pid, UNAVAILABLE);
        assert_eq!(r.layout.mark_victim_comm, UNAVAILABLE);
        assert_eq!(r.layout.reclaim_begin_order, UNAVAILABLE);
        assert_eq!(r.layout.reclaim_end_nr_reclaimed, 8);
        assert_eq!(r.reclaim_begin_gfp_flags_size, 0);
        assert!(
            r.missing_fields
                .contains(&"oom/mark_victim.pid (size 2, expected 4)".to_string()),
            "{r:?}"
        );
        assert!(
            r.missing_fields
                .iter()
                .any(|m| m.starts_with("oom/mark_victim.comm (`char[16] comm`")),
            "{r:?}"
        );
    }

    #[test]
    fn root_lookup_and_error_message() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(b.join("events")).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        assert_eq!(tracefs_root_in(&[&a, &b]).unwrap(), b);
        std::fs::create_dir_all(a.join("events")).unwrap();
        assert_eq!(tracefs_root_in(&[&a, &b]).unwrap(), a);
        let msg = tracefs_root_in(&[&dir.path().join("x")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("mount -t tracefs"), "{msg}");

        // A fake tracefs tree: read_layout reads it, reports what is absent.
        let ev = a.join("events/oom/mark_victim");
        std::fs::create_dir_all(&ev).unwrap();
        std::fs::write(ev.join("format"), MARK_VICTIM_5_10).unwrap();
        assert!(event_exists(&a, "oom", "mark_victim"));
        assert!(!event_exists(&a, "oom", "wake_reaper"));
        let r = read_layout(&a).unwrap();
        assert_eq!(r.layout.mark_victim_pid, 8);
        assert_eq!(r.missing_events.len(), 6, "{r:?}");
        std::fs::write(
            ev.join("format"),
            "format:\n\tfield:int pid;\toffset:oops;\tsize:4;\n",
        )
        .unwrap();
        let err = read_layout(&a).unwrap_err().to_string();
        assert!(err.contains("offset:oops"), "{err}");
    }

    #[test]
    fn live_tracefs() {
        let root = tracefs_root()
            .unwrap_or_else(|e| panic!("needs tracefs (root; `cargo xtask setup` mounts it): {e}"));
        assert!(
            event_exists(&root, "oom", "mark_victim"),
            "needs the oom/mark_victim tracepoint: none under {}",
            root.display()
        );
        let r = read_layout(&root).unwrap();
        eprintln!("{r:#?}");
        assert_eq!(r.layout.mark_victim_pid, 8);
        let text = std::fs::read_to_string(format_path(&root, "oom", "mark_victim")).unwrap();
        let has_comm = parse_format(&text)
            .unwrap()
            .iter()
            .any(|f| f.name == "comm");
        if has_comm {
            // 6.x kernels (this one is 6.18): every field is there.
            assert!(r.missing_events.is_empty(), "{:?}", r.missing_events);
            assert!(r.missing_fields.is_empty(), "{:?}", r.missing_fields);
            assert_eq!(r.reclaim_begin_gfp_flags_size, 8);
        }
    }
}
