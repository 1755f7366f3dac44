//! The ranking: where the candidates come from, whether the victim had the
//! most points, who was passed over and why, and the patterns that make a
//! kill free little (many small tasks) or surprise (not the biggest task).
use crate::{
    base::units::human_bytes as hb,
    model::{
        decision::{
            explain::input::ExplainInput,
            record::{Candidate, Victim},
        },
        score::{BadnessModel, expected_choice},
    },
    report::KernelReport,
};

pub(super) fn candidates(out: &mut Vec<String>, x: &ExplainInput<'_>) {
    if x.candidates.is_empty() {
        if x.victim.is_some() && x.report.is_some_and(|r| r.tasks.is_none()) {
            out.push("The kernel's report has no task table (vm.oom_dump_tasks=0?).".to_owned());
        }
        return;
    }
    let (Some(model), Some(total)) = (x.model, x.totalpages) else {
        return;
    };
    candidates_source(out, x, model, total);
    choice(out, x, model);
    passed_over(out, x);
}

/// Where the candidates and their points come from.
fn candidates_source(out: &mut Vec<String>, x: &ExplainInput<'_>, model: BadnessModel, total: u64) {
    if let (true, Some(chosen_points)) = (x.candidates_source == "bpf", x.points_recomputed) {
        let victim_points = x
            .candidates
            .iter()
            .find(|c| c.victim)
            .and_then(|c| c.points);
        let check = match (chosen_points, victim_points) {
            (Some(kernel), Some(ours)) if kernel == ours => format!(
                " The victim's recomputed {ours} points equal the kernel's own oc->chosen_points."
            ),
            (Some(kernel), Some(ours)) => format!(
                " The victim's recomputed {ours} points differ from the kernel's oc->chosen_points {kernel}."
            ),
            _ => String::new(),
        };
        out.push(format!(
            "Candidates are the killer's own evaluation: {} tasks visited; oom_badness is inlined on this kernel (its hook never fired), so points are recomputed from each task's counters with the kernel's rule ({}, totalpages {total}).{check}",
            x.candidates.len(),
            model.formula()
        ));
    } else if let Some((after_ms, cut)) = x.snapshot {
        let when = after_ms.map_or_else(
            || "just after the kill".to_owned(),
            |ms| format!("{ms:.1} ms after the kill"),
        );
        let cut = match cut {
            0 => String::new(),
            n => format!(" ({n} more tasks were not read: at most 512 are)"),
        };
        out.push(format!(
            "Candidates are the OOM memcg's {} tasks as /proc showed them {when}{cut}: the kernel printed no task table for this OOM (its reports are rate-limited to 10 per 5 s) and no hook here sees the killer's own evaluation. Points are recomputed with the kernel's rule ({}, totalpages {total}); the victim's numbers are the kernel's own at the kill, the others' may have changed since the killer compared them (a task that grew or exited in between ranks differently).",
            x.candidates.len(),
            model.formula()
        ));
    } else if x.candidates_source == "bpf" {
        out.push(format!(
            "Candidates are the killer's own evaluation: {} tasks visited, {} scored; points are oom_badness's return values ({}, totalpages {total}).",
            x.candidates.len(),
            x.candidates.iter().filter(|c| c.points.is_some()).count(),
            model.formula()
        ));
    } else {
        out.push(format!(
            "Candidates are the kernel's task table ({} tasks); points recomputed with the kernel's rule, {}, totalpages {total}.",
            x.candidates.len(),
            model.formula()
        ));
    }
}

/// Whether the victim is the candidate the kernel's rule ranks first.
fn choice(out: &mut Vec<String>, x: &ExplainInput<'_>, model: BadnessModel) {
    let points: Vec<Option<i64>> = x.candidates.iter().map(|c| c.points).collect();
    let expected = expected_choice(model, &points).map(|i| &x.candidates[i]);
    let victim_points = x
        .victim
        .and_then(|v| x.candidates.iter().find(|c| c.pid == v.pid))
        .and_then(|c| c.points);
    let tied = x
        .candidates
        .iter()
        .filter(|c| c.points.is_some() && c.points == victim_points)
        .count();
    // The kernel chose the victim, so it scored it: unscored here means its
    // numbers were impossible, and nothing can be said of who scored higher.
    let victim_unscored = x.victim.is_some_and(|v| {
        x.candidates
            .iter()
            .any(|c| c.pid == v.pid && c.points.is_none())
    });
    match (expected, x.victim) {
        _ if victim_unscored => {}
        (Some(top), Some(v)) if top.pid != v.pid && tied > 1 && victim_points == top.points => {
            out.push(format!(
                "The victim was one of {tied} candidates tied at {} points; the kernel compares per-CPU approximations of rss, so ties break by counters not shown in the report.",
                victim_points.unwrap_or(0)
            ));
        }
        (Some(top), Some(v)) if top.pid == v.pid => out.push(most_points(x, top)),
        (Some(top), Some(v)) => out.push(format!(
            "The kernel killed {} (pid {}) although {} (pid {}) scored higher ({} points): the choice was not by badness (memory.oom.group, oom_kill_allocating_task, an exiting task, or a report taken at a different moment).",
            v.comm.as_deref().unwrap_or("?"),
            v.pid,
            top.comm,
            top.pid,
            top.points.unwrap_or(0)
        )),
        _ => {}
    }
}

/// The victim had the most points: by how much, over whom.
fn most_points(x: &ExplainInput<'_>, top: &Candidate) -> String {
    let eligible = x.candidates.iter().filter(|c| c.points.is_some()).count();
    let runner_up = x
        .candidates
        .iter()
        .filter(|c| c.pid != top.pid && c.points.is_some())
        .max_by_key(|c| c.points);
    let next = runner_up.map_or(String::new(), |r| {
        format!(
            "; next was {} (pid {}) with {} points",
            r.comm,
            r.pid,
            r.points.unwrap_or(0)
        )
    });
    format!(
        "The victim had the most points ({}) of {eligible} eligible candidates{next}.",
        top.points.unwrap_or(0)
    )
}

/// The tasks the killer passed over, by reason.
fn passed_over(out: &mut Vec<String>, x: &ExplainInput<'_>) {
    let skipped = |reason: &str| {
        x.candidates
            .iter()
            .filter(|c| c.skip_reason.as_deref() == Some(reason))
            .count()
    };
    for (reason, text) in [
        (
            "oom_score_adj_min",
            "had oom_score_adj -1000 and could not be chosen",
        ),
        (
            "already_victim",
            "were earlier victims already being reaped",
        ),
        (
            "victim_exiting",
            "were earlier victims still exiting: the kernel aborted this OOM to let them go",
        ),
        ("kernel_thread", "were kernel threads"),
        ("no_mm", "had no memory left (exiting)"),
        ("not_eligible", "were not eligible (cpuset or mempolicy)"),
    ] {
        let n = skipped(reason);
        if n > 0 {
            out.push(format!("{n} task(s) {text}."));
        }
    }
    let unkillable = x.candidates.iter().filter(|c| c.points.is_none()).count();
    if x.candidates_source != "bpf" && unkillable > skipped("oom_score_adj_min") {
        out.push(format!(
            "{} task(s) could not be scored.",
            unkillable - skipped("oom_score_adj_min")
        ));
    }
}

/// Many small tasks: no single kill frees much.
pub(super) fn many_small_tasks(out: &mut Vec<String>, x: &ExplainInput<'_>, v: &Victim) {
    let eligible: Vec<&Candidate> = x.candidates.iter().filter(|c| c.points.is_some()).collect();
    let Some(limit) = x.oom_memcg.and_then(|m| m.limit_bytes).filter(|&l| l > 0) else {
        return;
    };
    if eligible.len() < 10 {
        return;
    }
    let share = |c: &Candidate| c.rss_bytes as f64 * 100.0 / limit as f64;
    let largest = eligible.iter().map(|c| share(c)).fold(0.0, f64::max);
    if largest < 20.0 {
        let victim_rss = x
            .candidates
            .iter()
            .find(|c| c.pid == v.pid)
            .map_or(0, |c| c.rss_bytes);
        out.push(format!(
            "{} eligible tasks and none above {largest:.1}% of the limit: killing the top one frees only {}. Many small workers leave the killer little to gain per kill (an OOM storm follows); memory.oom.group=1 kills the whole group instead.",
            eligible.len(),
            hb(victim_rss)
        ));
    }
}

/// Why the task with the most rss was not the one killed.
pub(super) fn why_not_the_biggest(
    out: &mut Vec<String>,
    x: &ExplainInput<'_>,
    v: &Victim,
    report: &KernelReport,
) {
    let Some(biggest) = x.candidates.iter().max_by_key(|c| c.rss_bytes) else {
        return;
    };
    if biggest.pid == v.pid || biggest.rss_bytes == 0 {
        return;
    }
    let reason = biggest_not_chosen(x, v, biggest, report);
    out.push(format!(
        "The biggest task, {} (pid {}, rss {}), was not killed: it {reason}.",
        biggest.comm,
        biggest.pid,
        hb(biggest.rss_bytes)
    ));
}

/// Why the killer preferred the victim over the biggest task.
fn biggest_not_chosen(
    x: &ExplainInput<'_>,
    v: &Victim,
    biggest: &Candidate,
    report: &KernelReport,
) -> String {
    let victim_adj = v.oom_score_adj.unwrap_or(0);
    if !biggest.eligible {
        format!(
            "has oom_score_adj {} and can never be chosen",
            biggest.oom_score_adj
        )
    } else if biggest.oom_score_adj < victim_adj {
        format!(
            "has oom_score_adj {} against the victim's {victim_adj}, which moved the victim ahead",
            biggest.oom_score_adj
        )
    } else if report.selected.as_ref().is_some_and(|s| s.pid != v.pid) {
        "was not the task the kernel selected (see the selection above)".to_owned()
    } else if biggest.points.is_none() || victim_points(x, v).is_none() {
        "could not be compared: the points are unknown for this report".to_owned()
    } else if victim_points(x, v) >= biggest.points {
        "has fewer points once swap and page tables are counted".to_owned()
    } else {
        "scored higher; the kernel's choice was not by badness here".to_owned()
    }
}

/// The victim's points as its candidate row has them.
fn victim_points(x: &ExplainInput<'_>, v: &Victim) -> Option<i64> {
    x.candidates
        .iter()
        .find(|c| c.pid == v.pid)
        .and_then(|c| c.points)
}
