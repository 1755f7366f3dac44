//! The docs' links resolve: every relative link in README.md and docs/*.md
//! names a file that exists, and every `#anchor` into a Markdown file names
//! one of its headings (GitHub's slugs). Links with a scheme (https:) are
//! not fetched. Run by `cargo xtask lint`.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// Checks README.md and docs/*.md under `root`; one error lists every
/// broken link with its file and line.
pub fn check(root: &Path) -> Result<()> {
    let mut pages = vec![root.join("README.md")];
    for entry in fs::read_dir(root.join("docs")).context("reading docs/")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    let mut anchors = Anchors::default();
    let mut broken = Vec::new();
    for page in &pages {
        let text =
            fs::read_to_string(page).with_context(|| format!("reading {}", page.display()))?;
        for (line, target) in links(&text) {
            if let Err(why) = resolve(page, &target, &mut anchors) {
                let name = page.strip_prefix(root).unwrap_or(page).display();
                broken.push(format!("{name}:{line}: {target}: {why}"));
            }
        }
    }
    if !broken.is_empty() {
        bail!("broken links:\n  {}", broken.join("\n  "));
    }
    eprintln!("xtask: links: {} pages, every link resolves", pages.len());
    Ok(())
}

/// `target` (a link written in `page`) names an existing file and, for a
/// Markdown file, an existing heading.
fn resolve(page: &Path, target: &str, anchors: &mut Anchors) -> Result<(), String> {
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        page.to_owned()
    } else {
        page.parent().unwrap_or(Path::new(".")).join(path)
    };
    if !file.exists() {
        return Err("no such file".into());
    }
    if anchor.is_empty() || file.extension().is_none_or(|e| e != "md") {
        return Ok(());
    }
    if anchors.of(&file).iter().any(|a| a == anchor) {
        Ok(())
    } else {
        Err(format!("no heading #{anchor} there"))
    }
}

/// The heading slugs of each Markdown file, read once.
#[derive(Default)]
struct Anchors(HashMap<PathBuf, Vec<String>>);

impl Anchors {
    fn of(&mut self, file: &Path) -> &[String] {
        self.0.entry(file.to_owned()).or_insert_with(|| {
            let text = fs::read_to_string(file).unwrap_or_default();
            slugs(&text)
        })
    }
}

/// Relative link targets with their line numbers, outside code blocks and
/// code spans: inline `[text](target)` and reference `[label]: target`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let prose = without_code_spans(line);
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find([')', ' ']).unwrap_or(rest.len());
            found.push((index + 1, rest[..end].to_owned()));
        }
        if let Some(target) = reference_definition(&prose) {
            found.push((index + 1, target.to_owned()));
        }
    }
    found.retain(|(_, target)| {
        !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:")
    });
    found
}

/// `[label]: target` at the start of a line.
fn reference_definition(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (_, after) = rest.split_once("]:")?;
    after.split_whitespace().next()
}

/// `line` with the text of its `code spans` blanked out.
fn without_code_spans(line: &str) -> String {
    let mut inside = false;
    line.chars()
        .map(|c| {
            if c == '`' {
                inside = !inside;
                ' '
            } else if inside {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// GitHub's anchors for the headings of a Markdown text: lower case, only
/// letters, digits, `-`, `_` and spaces kept, spaces as `-`; a repeated
/// slug gets `-1`, `-2`, ….
fn slugs(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(title) = heading(line).filter(|_| !fenced) else {
            continue;
        };
        let slug: String = link_text(title)
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let count = seen.entry(slug.clone()).or_insert(0);
        out.push(match *count {
            0 => slug.clone(),
            n => format!("{slug}-{n}"),
        });
        *count += 1;
    }
    out
}

/// The text of an ATX heading (`## Title`), if `line` is one.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    let title = line[hashes..].strip_prefix(' ')?;
    (1..=6).contains(&hashes).then(|| title.trim())
}

/// `[text](target)` replaced by `text`, as a heading's anchor is made from
/// its text alone.
fn link_text(title: &str) -> String {
    let mut out = String::new();
    let mut rest = title;
    while let Some(open) = rest.find('[') {
        let Some((inner, after)) = rest[open + 1..].split_once("](") else {
            break;
        };
        let Some(close) = after.find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(inner);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_github() {
        let text = "# oomtrace\n## What a restart keeps: `--state-dir`\n## oomtrace's own memory, CPU per kill, and latency\n## Tests\n## Tests\n```\n# not a heading\n```\n";
        assert_eq!(
            slugs(text),
            [
                "oomtrace",
                "what-a-restart-keeps---state-dir",
                "oomtraces-own-memory-cpu-per-kill-and-latency",
                "tests",
                "tests-1"
            ]
        );
    }

    #[test]
    fn links_skip_code_and_urls() {
        let text =
            "see [a](a.md#x) and `[b](b.md)` and [c](https://c)\n```\n[d](d.md)\n```\n[e]: e.md\n";
        assert_eq!(
            links(text),
            [(1, "a.md#x".to_owned()), (5, "e.md".to_owned())]
        );
    }
}
