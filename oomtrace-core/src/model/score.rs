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

/// The points the kernel gives the task, or None when the task is never
/// chosen (`oom_score_adj == -1000`).
pub fn badness(model: BadnessModel, input: BadnessInput, totalpages: u64) -> Option<i64> {
    if input.oom_score_adj <= OOM_SCORE_ADJ_MIN {
        return None;
    }
    let base = (input.rss_pages + input.swap_pages + input.pgtable_pages) as i64;
    let adj = i64::from(input.oom_score_adj);
    let adj_term = adj * (totalpages / 1000) as i64;
    Some(match model {
        BadnessModel::Linux5_9 => base + adj_term,
        BadnessModel::Linux4_19 => (base + adj_term).max(1),
        BadnessModel::Linux3_10 => (base + adj_term).max(1),
        BadnessModel::PerMille => {
            if totalpages == 0 {
                return Some(1);
            }
            let mut points = base * 1000 / totalpages as i64;
            if input.uid == 0 {
                points -= 30;
            }
            (points + adj).clamp(1, 1000)
        }
    })
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
}
