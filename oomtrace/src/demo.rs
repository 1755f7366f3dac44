//! `oomtrace demo`: a throw-away memcg, traced, with a hog run in it until
//! the kernel kills it; prints the decision and cleans up.
use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{
    app::{self, RunOptions},
    cgroup::MemoryHierarchy,
    cli::TraceArgs,
    loader,
    workload::ThrowawayCgroup,
};

pub fn run(limit_mib: u64, json: bool, trace: &TraceArgs) -> Result<u64> {
    loader::ensure_root()?;
    let hierarchy = MemoryHierarchy::detect()?;
    let name = format!("oomtrace-demo-{}", std::process::id());
    let cgroup = ThrowawayCgroup::create(&hierarchy, &name, limit_mib << 20)?;
    if !json {
        println!(
            "oomtrace demo: created {} with a {limit_mib} MiB limit; a memory hog will grow in it until the kernel kills it",
            cgroup.path.display()
        );
    }
    let hog: Arc<Mutex<Option<Child>>> = Arc::default();
    let exe = std::env::current_exe().context("locating the oomtrace binary")?;
    let start_hog = {
        let hog = Arc::clone(&hog);
        let dir = cgroup.path.clone();
        move || -> Result<()> {
            let child = Command::new(&exe)
                .arg("hog")
                .arg("--join")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .context("starting the memory hog")?;
            *hog.lock().expect("hog lock") = Some(child);
            Ok(())
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let decisions = runtime.block_on(app::run(
        RunOptions {
            cgroups: vec![cgroup.path.clone()],
            json,
            count: Some(1),
            duration: Some(Duration::from_secs(trace.duration.unwrap_or(60))),
            backend: trace.backend.resolve(),
            top: trace.top,
            btf_path: trace.btf.clone(),
            charge_hook: trace.charge_hook,
            dump: None,
        },
        start_hog,
    ))?;
    if let Some(mut child) = hog.lock().expect("hog lock").take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if decisions == 0 {
        anyhow::bail!("no OOM kill was traced in {}", cgroup.path.display());
    }
    Ok(decisions)
}
