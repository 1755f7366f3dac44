//! The victim's share: what it counted toward its badness, and what its
//! oom_score_adj did to its score.
use crate::{
    base::units::human_bytes as hb,
    model::decision::{explain::input::ExplainInput, record::Victim},
};

pub(super) fn victim_share(out: &mut Vec<String>, x: &ExplainInput<'_>, v: &Victim) {
    let counted = v
        .rss_anon_bytes
        .zip(v.rss_file_bytes)
        .zip(v.rss_shmem_bytes)
        .map(|((a, f), s)| {
            [
                f,
                s,
                v.swap_bytes.unwrap_or(0),
                v.pgtables_bytes.unwrap_or(0),
            ]
            .iter()
            .fold(a, |sum, &b| sum.saturating_add(b))
        });
    let Some(counted) = counted else { return };
    let rss = v
        .rss_anon_bytes
        .unwrap_or(0)
        .saturating_add(v.rss_file_bytes.unwrap_or(0))
        .saturating_add(v.rss_shmem_bytes.unwrap_or(0));
    let share = x
        .oom_memcg
        .and_then(|m| m.limit_bytes)
        .filter(|&l| l > 0)
        .map_or(String::new(), |l| {
            format!(
                " ({:.1}% of the limit; file pages may be charged to another memcg)",
                counted as f64 * 100.0 / l as f64
            )
        });
    out.push(format!(
        "Victim {} (pid {}) counted {} toward its badness{share}: rss {} (anon {}, file {}, shmem {}), swap {}, page tables {}, oom_score_adj {}.",
        v.comm.as_deref().unwrap_or("?"),
        v.pid,
        hb(counted),
        hb(rss),
        hb(v.rss_anon_bytes.unwrap_or(0)),
        hb(v.rss_file_bytes.unwrap_or(0)),
        hb(v.rss_shmem_bytes.unwrap_or(0)),
        v.swap_bytes.map_or("unknown".to_owned(), hb),
        v.pgtables_bytes.map_or("unknown".to_owned(), hb),
        v.oom_score_adj.map_or("unknown".to_owned(), |a| a.to_string()),
    ));
}

/// The oom_score_adj term: adj × totalpages / 1000 points.
pub(super) fn score_adjustment(out: &mut Vec<String>, x: &ExplainInput<'_>, v: &Victim) {
    if let (Some(adj), Some(total)) = (v.oom_score_adj, x.totalpages)
        && adj != 0
    {
        // Checked: a totalpages no machine has is left unexplained, not wrapped.
        let Some(term) = i64::try_from(total / 1000)
            .ok()
            .and_then(|t| i64::from(adj).checked_mul(t))
        else {
            return;
        };
        out.push(format!(
            "oom_score_adj {adj} {} {} points ({}) to its score.",
            if term >= 0 { "added" } else { "removed" },
            term.abs(),
            hb(term.unsigned_abs().saturating_mul(x.page_size))
        ));
    }
}
