//! The layering rule, checked on the source text: a module may import from
//! its own layer or a lower one, never from a higher one, and no two files
//! import each other in a loop. `cargo test` runs it for this crate and for
//! `oomtrace` (which keeps the kernel and command layers).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// A module path prefix (`model`, `kernel::loader`) and its layer's rank.
pub type Rule<'a> = (&'a str, u32);

/// Every import that breaks the layering or closes a loop, as readable lines.
pub fn violations(src: &Path, crate_alias: &str, rules: &[Rule<'_>]) -> Vec<String> {
    let modules = modules(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut found = Vec::new();
    for (module, path) in &modules {
        let text = fs::read_to_string(path).unwrap_or_default();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for target in imports(text, crate_alias, module, &modules) {
            if target == *module {
                continue;
            }
            if let (Some(from), Some(to)) = (rank(module, rules), rank(&target, rules))
                && to > from
            {
                found.push(format!(
                    "{module} (layer {from}) imports {target} (layer {to})"
                ));
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    found.extend(cycles(&edges));
    found
}

fn rank(module: &str, rules: &[Rule<'_>]) -> Option<u32> {
    rules
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, rank)| *rank)
}

/// `module::path -> file` for every .rs file below `src` (lib/main/mod name their folder).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap_or(&path).with_extension("");
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    out
}

/// Modules named by `crate::a::b` paths (and `crate::{a::b, c}` groups) and
/// by `super::` paths relative to `module`, resolved to the longest
/// existing module.
fn imports(
    text: &str,
    alias: &str,
    module: &str,
    modules: &BTreeMap<String, PathBuf>,
) -> BTreeSet<String> {
    let mut paths = prefixed_paths(text, &format!("{alias}::"), |_| Some(String::new()));
    paths.extend(prefixed_paths(text, "super::", |levels| {
        let parts: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
        let keep = parts.len().checked_sub(levels)?;
        Some(parts[..keep].join("::"))
    }));
    paths
        .iter()
        .filter_map(|p| {
            let parts: Vec<&str> = p.split("::").filter(|p| !p.is_empty()).collect();
            (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|m| modules.contains_key(m) && !m.is_empty())
        })
        .collect()
}

/// The paths after each run of `prefix` in `text`, joined to the base that
/// `base_of(repeats)` gives (`super::super::` is one run of two); a run
/// whose base does not exist is skipped.
fn prefixed_paths(
    text: &str,
    prefix: &str,
    base_of: impl Fn(usize) -> Option<String>,
) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let mut after = &rest[at + prefix.len()..];
        let mut repeats = 1;
        while let Some(more) = after.strip_prefix(prefix) {
            after = more;
            repeats += 1;
        }
        rest = after;
        let Some(base) = base_of(repeats) else {
            continue;
        };
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            paths.extend(group_paths(&base, &group[..end]));
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            let path = after[..end].trim_end_matches(':');
            paths.push(if base.is_empty() {
                path.to_owned()
            } else {
                format!("{base}::{path}")
            });
        }
    }
    paths
}

/// Flattens `a::{b, c::{d}}, e` into `a::b`, `a::c::d`, `e`.
fn group_paths(base: &str, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    let bytes = group.as_bytes();
    for i in 0..=bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(b',');
        match c {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                let item = group[start..i.min(group.len())].trim();
                start = i + 1;
                if item.is_empty() {
                    continue;
                }
                let joined = |s: &str| {
                    if base.is_empty() {
                        s.to_owned()
                    } else {
                        format!("{base}::{s}")
                    }
                };
                match item.find("::{") {
                    Some(open) if item.ends_with('}') => out.extend(group_paths(
                        &joined(&item[..open]),
                        &item[open + 3..item.len() - 1],
                    )),
                    _ => out.push(joined(item.split(" as ").next().unwrap_or(item))),
                }
            }
            _ => {}
        }
    }
    out
}

/// One line per import loop among files (strongly connected components).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let nodes: Vec<&String> = edges.keys().collect();
    let reaches = |from: &String, to: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for next in edges.get(n).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        false
    };
    let mut out = Vec::new();
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            if reaches(a, b) && reaches(b, a) {
                out.push(format!(
                    "{a} and {b} import each other (directly or through others)"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core's layers: base ← events/cgroup/report ← model ← output/dump.
    pub const CORE: &[Rule<'static>] = &[
        ("base", 0),
        ("events", 1),
        ("cgroup", 1),
        ("report", 1),
        ("model", 2),
        ("output", 3),
        ("dump", 3),
        ("layers", 0),
    ];

    #[test]
    fn core_layers_import_only_downwards_and_without_loops() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = violations(&src, "crate", CORE);
        assert!(found.is_empty(), "{found:#?}");
    }

    /// The check itself sees an upward import and a loop.
    #[test]
    fn an_upward_import_and_a_loop_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        fs::create_dir_all(src.join("model")).unwrap();
        fs::write(src.join("lib.rs"), "pub mod model; pub mod output;").unwrap();
        fs::write(
            src.join("model/mod.rs"),
            "use crate::{output::card, model::x};",
        )
        .unwrap();
        fs::write(src.join("model/x.rs"), "use crate::model;").unwrap();
        fs::write(src.join("output.rs"), "use crate::model::x::Y;").unwrap();
        let found = violations(src, "crate", CORE);
        assert!(
            found
                .iter()
                .any(|f| f == "model (layer 2) imports output (layer 3)"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("model and output import each other")),
            "{found:?}"
        );
    }

    /// `super::` paths count too: two siblings that reach each other
    /// through their parent's name close a loop.
    #[test]
    fn a_loop_through_super_paths_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        fs::create_dir_all(src.join("report")).unwrap();
        fs::write(src.join("lib.rs"), "pub mod report;").unwrap();
        fs::write(src.join("report/mod.rs"), "pub mod a; pub mod b;").unwrap();
        fs::write(src.join("report/a.rs"), "use super::b::read;").unwrap();
        fs::write(
            src.join("report/b.rs"),
            "use super::{Error, a::Entry};\nuse super::super::report;",
        )
        .unwrap();
        let found = violations(src, "crate", CORE);
        assert_eq!(
            found,
            ["report::a and report::b import each other (directly or through others)"]
        );
    }

    #[test]
    fn groups_flatten() {
        assert_eq!(
            group_paths("", "a::{b, c::{d, e as f}}, g"),
            ["a::b", "a::c::d", "a::c::e", "g"]
        );
    }
}
