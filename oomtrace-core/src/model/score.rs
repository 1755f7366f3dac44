//! The OOM killer's badness score, as each kernel generation computes it.
//!
//! oomtrace recomputes every candidate's points from the memory numbers the
//! kernel reported, with the rules of the kernel that made the decision, so
//! the ranking can be checked against the kernel's actual choice.

/// `OOM_SCORE_ADJ_MIN`: the task is never chosen.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadnessModel {
    /// 5.9 and later: `rss + swapents + pgtables_bytes/PAGE_SIZE + adj * (totalpages/1000)`,
    /// may be negative; unkillable tasks are skipped.
    Linux5_9,
    /// 4.19 – 5.8: the same sum, clamped to at least 1.
    Linux4_19,
    /// 3.10 – 4.18: `rss + nr_ptes (+ nr_pmds) + swapents`, clamped to at least 1. Before
    /// 4.17 tasks with CAP_SYS_ADMIN lose 3%; capabilities are not in the report (uid 0 in
    /// a container usually lacks it), so that bonus is not modelled. The report prints
    /// `points * 1000 / totalpages` as "score".
    Linux3_10,
    /// 2.6.36 – 3.9 (and RHEL 6's 2.6.32): per-mille of totalpages, root −30, adj added,
    /// clamped to 1..=1000.
    PerMille,
}

impl BadnessModel {
    /// Picks the model from a kernel release string ("6.18.44-fc", "2.6.32-431.el6").
    pub fn for_release(release: &str) -> Option<Self> {
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        Some(match (major, minor) {
            (m, _) if m >= 6 => Self::Linux5_9,
            (5, n) if n >= 9 => Self::Linux5_9,
            (5, _) => Self::Linux4_19,
            (4, n) if n >= 19 => Self::Linux4_19,
            (4, _) => Self::Linux3_10,
            (3, n) if n >= 10 => Self::Linux3_10,
            _ => Self::PerMille,
        })
    }

    pub fn formula(self) -> &'static str {
        match self {
            Self::Linux5_9 => {
                "points = rss + swap entries + page-table pages + oom_score_adj × (totalpages / 1000)"
            }
            Self::Linux4_19 => {
                "points = max(1, rss + swap entries + page-table pages + oom_score_adj × (totalpages / 1000))"
            }
            Self::Linux3_10 => {
                "points = max(1, rss + page-table pages + swap entries + oom_score_adj × (totalpages / 1000)); score = points × 1000 / totalpages"
            }
            Self::PerMille => {
                "score = clamp((rss + page tables + swap) × 1000 / totalpages − 30 for root + oom_score_adj, 1, 1000)"
            }
        }
    }
}

/// A task's memory as the badness computation sees it, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BadnessInput {
    pub rss_pages: u64,
    pub swap_pages: u64,
    /// Page-table pages: `pgtables_bytes / PAGE_SIZE` on 4.19+, `nr_ptes (+ nr_pmds)` before.
    pub pgtable_pages: u64,
    pub oom_score_adj: i32,
    /// uid 0 stands in for CAP_SYS_ADMIN in the per-mille model's root bonus.
    pub uid: u32,
}

/// The most pages any plausible machine has: 2^52 bytes (the x86-64 and
/// arm64 physical address limit) in 4 KiB pages. A task, a memcg limit or a
/// machine said to hold more comes from a corrupt or forged report.
pub const MAX_PLAUSIBLE_PAGES: u64 = 1 << 40;

/// `OOM_SCORE_ADJ_MAX`.
pub const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// Why no points could be computed from the numbers given: they describe no
/// machine that exists (a corrupt or forged report), so any number we printed
/// would be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    /// rss, swap or page tables beyond [`MAX_PLAUSIBLE_PAGES`].
    #[error("{field} of {pages} pages is more memory than any machine has")]
    Memory { field: &'static str, pages: u64 },
    /// totalpages beyond twice [`MAX_PLAUSIBLE_PAGES`] (RAM plus swap).
    #[error("totalpages {0} is more memory than any machine has")]
    TotalPages(u64),
    /// oom_score_adj outside -1000..=1000 (the kernel clamps it there).
    #[error("oom_score_adj {0} is outside -1000..=1000")]
    Adj(i32),
    /// The sum does not fit in the kernel's own type.
    #[error("the points overflow")]
    Overflow,
}

/// The points the kernel gives the task, or None when the task is never
/// chosen (`oom_score_adj == -1000`) or the numbers are implausible (see
/// [`try_badness`] to tell the two apart).
pub fn badness(model: BadnessModel, input: BadnessInput, totalpages: u64) -> Option<i64> {
    try_badness(model, input, totalpages).ok().flatten()
}

/// Like [`badness`], but an impossible input (memory beyond any machine, an
/// adj the kernel would never hold, a sum that overflows) is an error the
/// caller can explain instead of a wrapped number. `Ok(None)`: never chosen.
pub fn try_badness(
    model: BadnessModel,
    input: BadnessInput,
    totalpages: u64,
) -> Result<Option<i64>, Implausible> {
    if !(OOM_SCORE_ADJ_MIN..=OOM_SCORE_ADJ_MAX).contains(&input.oom_score_adj) {
        return Err(Implausible::Adj(input.oom_score_adj));
    }
    if input.oom_score_adj == OOM_SCORE_ADJ_MIN {
        return Ok(None);
    }
    for (field, pages) in [
        ("rss", input.rss_pages),
        ("swap", input.swap_pages),
        ("page tables", input.pgtable_pages),
    ] {
        if pages > MAX_PLAUSIBLE_PAGES {
            return Err(Implausible::Memory { field, pages });
        }
    }
    if totalpages > 2 * MAX_PLAUSIBLE_PAGES {
        return Err(Implausible::TotalPages(totalpages));
    }
    // Bounded above, so none of this can overflow; checked all the same.
    let base = input
        .rss_pages
        .checked_add(input.swap_pages)
        .and_then(|s| s.checked_add(input.pgtable_pages))
        .and_then(|s| i64::try_from(s).ok())
        .ok_or(Implausible::Overflow)?;
    let adj = i64::from(input.oom_score_adj);
    let total = i64::try_from(totalpages).map_err(|_| Implausible::Overflow)?;
    let adj_term = adj.checked_mul(total / 1000).ok_or(Implausible::Overflow)?;
    let sum = base.checked_add(adj_term).ok_or(Implausible::Overflow);
    Ok(Some(match model {
        BadnessModel::Linux5_9 => sum?,
        BadnessModel::Linux4_19 | BadnessModel::Linux3_10 => sum?.max(1),
        BadnessModel::PerMille => {
            if totalpages == 0 {
                return Ok(Some(1));
            }
            let mut points = base.checked_mul(1000).ok_or(Implausible::Overflow)? / total;
            if input.uid == 0 {
                points -= 30;
            }
            points.saturating_add(adj).clamp(1, 1000)
        }
    }))
}

/// Index of the candidate the kernel would pick: the highest points; on a
/// tie the *later* task in iteration order wins on 4.19+ (`points <
/// chosen_points` skips, equal replaces) and the earlier one before
/// (`points > chosen_points` replaces).
pub fn expected_choice(model: BadnessModel, points: &[Option<i64>]) -> Option<usize> {
    let later_wins_ties = matches!(model, BadnessModel::Linux5_9 | BadnessModel::Linux4_19);
    let mut chosen: Option<(usize, i64)> = None;
    for (index, p) in points.iter().enumerate() {
        let Some(p) = *p else { continue };
        let better = match chosen {
            None => true,
            Some((_, best)) => p > best || (later_wins_ties && p == best),
        };
        if better {
            chosen = Some((index, p));
        }
    }
    chosen.map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_follow_the_release() {
        assert_eq!(
            BadnessModel::for_release("6.18.44-fc-v669"),
            Some(BadnessModel::Linux5_9)
        );
        assert_eq!(
            BadnessModel::for_release("5.10.0-32-amd64"),
            Some(BadnessModel::Linux5_9)
        );
        assert_eq!(
            BadnessModel::for_release("5.4.0-100-generic"),
            Some(BadnessModel::Linux4_19)
        );
        assert_eq!(
            BadnessModel::for_release("4.4.0-28-generic"),
            Some(BadnessModel::Linux3_10)
        );
        assert_eq!(
            BadnessModel::for_release("2.6.32-431.el6.x86_64"),
            Some(BadnessModel::PerMille)
        );
        assert_eq!(BadnessModel::for_release("garbage"), None);
    }

    #[test]
    fn adj_term_uses_integer_division_of_totalpages_first() {
        // totalpages 8191: 8191/1000 = 8, so adj 500 adds 4000, not 4095.
        let input = BadnessInput {
            rss_pages: 100,
            oom_score_adj: 500,
            ..Default::default()
        };
        assert_eq!(badness(BadnessModel::Linux5_9, input, 8191), Some(4100));
    }

    #[test]
    fn negative_points_only_clamp_before_5_9() {
        let input = BadnessInput {
            rss_pages: 10,
            oom_score_adj: -999,
            ..Default::default()
        };
        assert_eq!(
            badness(BadnessModel::Linux5_9, input, 16384),
            Some(10 - 999 * 16)
        );
        assert_eq!(badness(BadnessModel::Linux4_19, input, 16384), Some(1));
        let unkillable = BadnessInput {
            oom_score_adj: -1000,
            ..input
        };
        assert_eq!(badness(BadnessModel::Linux5_9, unkillable, 16384), None);
    }

    #[test]
    fn per_mille_gives_small_tasks_one_point() {
        // The seed-002 pattern: every worker under 1‰ of a large limit scores 1.
        let worker = BadnessInput {
            rss_pages: 2157,
            uid: 30000,
            ..Default::default()
        };
        let init = BadnessInput {
            rss_pages: 26,
            uid: 0,
            ..Default::default()
        };
        let totalpages = 4 << 20;
        assert_eq!(badness(BadnessModel::PerMille, worker, totalpages), Some(1));
        assert_eq!(badness(BadnessModel::PerMille, init, totalpages), Some(1));
        // ...and the first one iterated wins the tie on those kernels.
        assert_eq!(
            expected_choice(BadnessModel::PerMille, &[Some(1), Some(1), Some(1)]),
            Some(0)
        );
    }

    #[test]
    fn later_task_wins_ties_on_modern_kernels() {
        assert_eq!(
            expected_choice(BadnessModel::Linux5_9, &[Some(5), None, Some(5), Some(3)]),
            Some(2)
        );
        assert_eq!(expected_choice(BadnessModel::Linux5_9, &[None, None]), None);
    }

    #[test]
    fn pre_4_19_adds_page_table_pages_and_clamps() {
        let input = BadnessInput {
            rss_pages: 100,
            pgtable_pages: 7,
            oom_score_adj: -1,
            ..Default::default()
        };
        assert_eq!(badness(BadnessModel::Linux3_10, input, 5000), Some(102));
        let tiny = BadnessInput {
            rss_pages: 1,
            oom_score_adj: -999,
            ..Default::default()
        };
        assert_eq!(badness(BadnessModel::Linux3_10, tiny, 5000), Some(1));
    }

    #[test]
    fn impossible_numbers_are_implausible_not_wrapped() {
        let model = BadnessModel::Linux5_9;
        let huge = BadnessInput {
            rss_pages: u64::MAX,
            ..Default::default()
        };
        assert_eq!(
            try_badness(model, huge, 16384),
            Err(Implausible::Memory {
                field: "rss",
                pages: u64::MAX
            })
        );
        assert_eq!(badness(model, huge, 16384), None);
        // adj 1000 with the largest plausible rss and totalpages still fits,
        // and is exactly the sum.
        let top = BadnessInput {
            rss_pages: MAX_PLAUSIBLE_PAGES,
            swap_pages: MAX_PLAUSIBLE_PAGES,
            pgtable_pages: MAX_PLAUSIBLE_PAGES,
            oom_score_adj: OOM_SCORE_ADJ_MAX,
            uid: 0,
        };
        let total = 2 * MAX_PLAUSIBLE_PAGES;
        let expected = i128::from(3 * MAX_PLAUSIBLE_PAGES) + 1000 * i128::from(total / 1000);
        for m in [
            BadnessModel::Linux5_9,
            BadnessModel::Linux4_19,
            BadnessModel::Linux3_10,
        ] {
            assert_eq!(
                try_badness(m, top, total).map(|p| p.map(i128::from)),
                Ok(Some(expected))
            );
        }
        assert_eq!(
            try_badness(BadnessModel::PerMille, top, total),
            Ok(Some(1000))
        );
        // One page more than any machine, anywhere, is implausible.
        for (i, field) in ["rss", "swap", "page tables"].into_iter().enumerate() {
            let mut input = top;
            let pages = MAX_PLAUSIBLE_PAGES + 1;
            match i {
                0 => input.rss_pages = pages,
                1 => input.swap_pages = pages,
                _ => input.pgtable_pages = pages,
            }
            assert_eq!(
                try_badness(model, input, total),
                Err(Implausible::Memory { field, pages })
            );
        }
        assert_eq!(
            try_badness(model, top, u64::MAX),
            Err(Implausible::TotalPages(u64::MAX))
        );
        for adj in [i32::MIN, -1001, 1001, i32::MAX] {
            let input = BadnessInput {
                oom_score_adj: adj,
                ..Default::default()
            };
            assert_eq!(try_badness(model, input, 16384), Err(Implausible::Adj(adj)));
            assert_eq!(badness(model, input, 16384), None);
        }
        // -1000 is a real value: never chosen, not implausible.
        let unkillable = BadnessInput {
            oom_score_adj: OOM_SCORE_ADJ_MIN,
            rss_pages: u64::MAX,
            ..Default::default()
        };
        assert_eq!(try_badness(model, unkillable, u64::MAX), Ok(None));
        // Messages are one line and name the number.
        let msg = Implausible::Memory {
            field: "rss",
            pages: u64::MAX,
        }
        .to_string();
        assert!(msg.contains(&u64::MAX.to_string()) && !msg.contains('\n'));
    }

    #[test]
    fn per_mille_of_nothing_and_most_negative_adj() {
        let input = BadnessInput {
            rss_pages: 5,
            oom_score_adj: -999,
            ..Default::default()
        };
        assert_eq!(try_badness(BadnessModel::PerMille, input, 0), Ok(Some(1)));
        assert_eq!(
            try_badness(BadnessModel::Linux5_9, input, 2 * MAX_PLAUSIBLE_PAGES),
            Ok(Some(5 - 999 * (2 * MAX_PLAUSIBLE_PAGES / 1000) as i64))
        );
    }
}
