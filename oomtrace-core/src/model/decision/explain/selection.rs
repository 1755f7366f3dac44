//! Old kernels' selection, as their report prints it: the selected task's
//! score (per mille of the limit before 3.10, ties and all) and the child
//! sacrificed in its place before 5.x.
use crate::{
    model::{decision::explain::input::ExplainInput, score::BadnessModel},
    report::{KernelReport, SelectedLine},
};

pub(super) fn old_kernel_selection(
    out: &mut Vec<String>,
    x: &ExplainInput<'_>,
    report: &KernelReport,
) {
    let Some(selected) = &report.selected else {
        return;
    };
    if x.model == Some(BadnessModel::PerMille) && selected.score <= 1 {
        out.push(per_mille_tie(report, selected));
    } else {
        out.push(selected_score(x, selected));
    }
    if let Some(k) = report.kill.as_ref().filter(|k| k.pid != selected.pid) {
        out.push(format!(
            "Kernels before 5.x sacrificed a child: {} (pid {}) was killed in place of {} (pid {}), so the selected process kept running.",
            k.comm, k.pid, selected.comm, selected.pid
        ));
    }
}

/// Per-mille scoring floors every small task at 1: the first one found wins.
fn per_mille_tie(report: &KernelReport, selected: &SelectedLine) -> String {
    let tasks = report.tasks.as_ref().map_or(String::new(), |t| {
        format!("{}{}", t.rows.len(), if t.elided_rows { "+" } else { "" })
    });
    let first = report.tasks.as_ref().and_then(|t| t.rows.first());
    format!(
        "The kernel scored tasks per mille of the limit: every task under 0.1% of it gets the minimum score 1, so all {tasks} tasks tied and the first one found won — {} (pid {}){}.",
        selected.comm,
        selected.pid,
        if first.is_some_and(|f| f.pid == selected.pid) {
            ", the first row of the task table"
        } else {
            ""
        }
    )
}

/// The selected task's printed score against the recomputed points.
fn selected_score(x: &ExplainInput<'_>, selected: &SelectedLine) -> String {
    let ours = x
        .candidates
        .iter()
        .find(|c| c.pid == selected.pid)
        .and_then(|c| {
            let total = i64::try_from(x.totalpages.filter(|&t| t > 0)?).ok()?;
            Some(c.points?.checked_mul(1000)? / total)
        });
    format!(
        "The kernel selected {} (pid {}) with score {} (points × 1000 / totalpages){}.",
        selected.comm,
        selected.pid,
        selected.score,
        match ours {
            Some(ours) if ours == selected.score =>
                " — the recomputed points give the same score".to_owned(),
            Some(ours) => format!(
                " — the recomputed points give {ours}: the report's numbers moved between scoring and printing"
            ),
            None => String::new(),
        }
    )
}
