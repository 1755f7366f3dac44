//! The command lines of the victim and the candidates, as read while they
//! lived, and the victim's runtime heap setting against the limit that fired.
use crate::{
    cgroup::process::ProcessArgs,
    model::{
        decision::{env::Environment, record::Decision},
        runtime_heap::assess,
    },
};

/// Fills `cmdline` where the environment read one, and `runtime_heap`.
pub(super) fn attach_cmdlines(decision: &mut Decision, env: &mut dyn Environment) {
    for c in &mut decision.candidates {
        if let Some(args) = env.process_args(c.tgid.unwrap_or(c.pid)) {
            (c.cmdline, c.cmdline_truncated) = cmdline_of(&args);
        }
    }
    let Some(victim) = decision.victim.as_mut() else {
        return;
    };
    let Some(args) = env.process_args(victim.tgid.unwrap_or(victim.pid)) else {
        return;
    };
    (victim.cmdline, victim.cmdline_truncated) = cmdline_of(&args);
    let limit = decision.oom_memcg.as_ref().and_then(|m| m.limit_bytes);
    let comm = victim.comm.as_deref().unwrap_or("");
    decision.runtime_heap = limit.and_then(|limit| assess(&args, comm, limit));
}

fn cmdline_of(args: &ProcessArgs) -> (Option<Vec<String>>, bool) {
    (Some(args.cmdline.args.clone()), args.cmdline.truncated)
}
