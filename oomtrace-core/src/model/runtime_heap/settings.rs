//! The heap bound a runtime was given, read from its command line and the
//! allowlisted environment variables, with each runtime's precedence.
use crate::cgroup::process::ProcessArgs;

use super::size::{go_size, jvm_size};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Jvm,
    Node,
    Go,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Jvm => "jvm",
            Runtime::Node => "node",
            Runtime::Go => "go",
        }
    }
}

/// How far the heap may grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Bytes(u64),
    /// `-XX:MaxRAMPercentage` (25 by default) of `-XX:MaxRAM`, else of
    /// the memory the JVM sees: its memcg's limit.
    PercentOfRam {
        percent: f64,
        max_ram: Option<u64>,
    },
}

/// The setting in effect.
#[derive(Debug, Clone, PartialEq)]
pub struct HeapSetting {
    pub runtime: Runtime,
    /// As written (`-Xmx512m`, `GOMEMLIMIT=200MiB`), or `default`.
    pub setting: String,
    /// `cmdline`, or the variable it came from.
    pub source: &'static str,
    pub bound: Bound,
    /// `-XX:MaxDirectMemorySize` (JVM).
    pub direct_max_bytes: Option<u64>,
}

/// The runtime's heap setting; None for a process of no runtime known here
/// (or a Node/Go process that set none).
pub fn heap_setting(args: &ProcessArgs, comm: &str) -> Option<HeapSetting> {
    let program = args.cmdline.args.first().map(|a| basename(a)).unwrap_or("");
    if program == "java" || comm == "java" {
        return Some(jvm(args));
    }
    if program.starts_with("node") || comm == "node" {
        return node(args);
    }
    go(args)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Words of an allowlisted variable, tagged with its name.
fn env_words<'a>(args: &'a ProcessArgs, name: &'static str) -> Vec<(&'static str, &'a str)> {
    let value = args.env_var(name).unwrap_or("");
    value.split_whitespace().map(|w| (name, w)).collect()
}

/// Launcher options that take the next argument as their value.
const JVM_VALUE_OPTIONS: &[&str] = &[
    "-cp",
    "-classpath",
    "--class-path",
    "-p",
    "--module-path",
    "--add-modules",
    "--add-opens",
    "--add-exports",
    "--add-reads",
    "--upgrade-module-path",
    "--limit-modules",
];

/// The JVM reads JAVA_TOOL_OPTIONS first, then the launcher's
/// JDK_JAVA_OPTIONS and command line (up to the main class or jar), then
/// _JAVA_OPTIONS: the last of each flag wins, and an explicit maximum heap
/// wins over a percentage.
fn jvm(args: &ProcessArgs) -> HeapSetting {
    let mut words = env_words(args, "JAVA_TOOL_OPTIONS");
    words.extend(env_words(args, "JDK_JAVA_OPTIONS"));
    let mut argv = args.cmdline.args.iter().skip(1);
    while let Some(word) = argv.next() {
        if !word.starts_with('-') || word == "-jar" || word == "-m" || word == "--module" {
            break;
        }
        words.push(("cmdline", word));
        if JVM_VALUE_OPTIONS.contains(&word.as_str()) {
            argv.next();
        }
    }
    words.extend(env_words(args, "_JAVA_OPTIONS"));

    let mut max_heap: Option<(u64, &str, &'static str)> = None;
    let mut percent: Option<(f64, &str, &'static str)> = None;
    let (mut max_ram, mut direct) = (None, None);
    for (source, word) in words {
        if let Some(size) = word
            .strip_prefix("-Xmx")
            .or_else(|| word.strip_prefix("-XX:MaxHeapSize="))
            .and_then(jvm_size)
        {
            max_heap = Some((size, word, source));
        } else if let Some(p) = word
            .strip_prefix("-XX:MaxRAMPercentage=")
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
        {
            percent = Some((p, word, source));
        } else if let Some(size) = word.strip_prefix("-XX:MaxRAM=").and_then(jvm_size) {
            max_ram = Some(size);
        } else if let Some(size) = word
            .strip_prefix("-XX:MaxDirectMemorySize=")
            .and_then(jvm_size)
        {
            direct = Some(size);
        }
    }
    let (setting, source, bound) = match (max_heap, percent) {
        (Some((bytes, word, source)), _) => (word.to_owned(), source, Bound::Bytes(bytes)),
        (None, Some((p, word, source))) => (
            word.to_owned(),
            source,
            Bound::PercentOfRam {
                percent: p,
                max_ram,
            },
        ),
        (None, None) => (
            "default".to_owned(),
            "default",
            Bound::PercentOfRam {
                percent: 25.0,
                max_ram,
            },
        ),
    };
    HeapSetting {
        runtime: Runtime::Jvm,
        setting,
        source,
        bound,
        direct_max_bytes: direct,
    }
}

/// `--max-old-space-size` (MiB) from NODE_OPTIONS, then the command line
/// up to the script (which takes precedence).
fn node(args: &ProcessArgs) -> Option<HeapSetting> {
    let mut words = env_words(args, "NODE_OPTIONS");
    let argv = args.cmdline.args.iter().skip(1);
    words.extend(
        argv.take_while(|w| w.starts_with('-'))
            .map(|w| ("cmdline", w.as_str())),
    );
    let mut found = None;
    for (source, word) in words {
        let mib = word
            .strip_prefix("--max-old-space-size=")
            .or_else(|| word.strip_prefix("--max_old_space_size="))
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(bytes) = mib.and_then(|m| m.checked_mul(1 << 20)) {
            found = Some((bytes, word, source));
        }
    }
    let (bytes, word, source) = found?;
    Some(HeapSetting {
        runtime: Runtime::Node,
        setting: word.to_owned(),
        source,
        bound: Bound::Bytes(bytes),
        direct_max_bytes: None,
    })
}

/// `GOMEMLIMIT` (a soft limit on all the Go runtime's memory); `off` or
/// unset: none.
fn go(args: &ProcessArgs) -> Option<HeapSetting> {
    let value = args.env_var("GOMEMLIMIT")?;
    Some(HeapSetting {
        runtime: Runtime::Go,
        setting: format!("GOMEMLIMIT={value}"),
        source: "GOMEMLIMIT",
        bound: Bound::Bytes(go_size(value)?),
        direct_max_bytes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::scrub::scrub;

    fn process(line: &str, env: &[(&str, &str)]) -> ProcessArgs {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        ProcessArgs {
            cmdline: scrub(&args),
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    fn bound(line: &str, env: &[(&str, &str)]) -> Option<(Bound, String, &'static str)> {
        heap_setting(&process(line, env), "").map(|s| (s.bound, s.setting, s.source))
    }

    #[test]
    fn jvm_xmx_and_its_precedence() {
        let b = bound("/usr/bin/java -Xmx512m -cp -Xmx1g Main -Xmx2g", &[]);
        assert_eq!(
            b,
            Some((Bound::Bytes(512 << 20), "-Xmx512m".into(), "cmdline"))
        );
        // _JAVA_OPTIONS comes after the command line, JAVA_TOOL_OPTIONS before.
        let env = [
            ("JAVA_TOOL_OPTIONS", "-Xmx64m"),
            ("_JAVA_OPTIONS", "-XX:MaxHeapSize=2g"),
        ];
        let b = bound("java -Xmx512m -jar app.jar", &env);
        assert_eq!(
            b,
            Some((
                Bound::Bytes(2 << 30),
                "-XX:MaxHeapSize=2g".into(),
                "_JAVA_OPTIONS"
            ))
        );
        let b = bound("java -jar app.jar", &[("JAVA_TOOL_OPTIONS", "-Xmx64m")]);
        assert_eq!(
            b,
            Some((
                Bound::Bytes(64 << 20),
                "-Xmx64m".into(),
                "JAVA_TOOL_OPTIONS"
            ))
        );
        // An explicit maximum wins over a percentage given later.
        let b = bound("java -Xmx300m -XX:MaxRAMPercentage=90 Main", &[]);
        assert_eq!(b.map(|b| b.0), Some(Bound::Bytes(300 << 20)));
    }

    #[test]
    fn jvm_percentages_max_ram_direct_memory_and_the_default() {
        let s = heap_setting(
            &process(
                "java -XX:MaxRAM=1g -XX:MaxRAMPercentage=75.0 -XX:MaxDirectMemorySize=128m Main",
                &[],
            ),
            "java",
        )
        .unwrap();
        assert_eq!(
            s.bound,
            Bound::PercentOfRam {
                percent: 75.0,
                max_ram: Some(1 << 30)
            }
        );
        assert_eq!(s.direct_max_bytes, Some(128 << 20));
        let b = bound("java Main", &[]);
        assert_eq!(
            b,
            Some((
                Bound::PercentOfRam {
                    percent: 25.0,
                    max_ram: None
                },
                "default".into(),
                "default"
            ))
        );
    }

    #[test]
    fn node_old_space_from_node_options_and_the_command_line() {
        let env = [("NODE_OPTIONS", "--max-old-space-size=1024")];
        let b = bound(
            "node --max-old-space-size=4096 server.js --max-old-space-size=1",
            &env,
        );
        assert_eq!(
            b,
            Some((
                Bound::Bytes(4 << 30),
                "--max-old-space-size=4096".into(),
                "cmdline"
            ))
        );
        let b = bound("/usr/bin/node server.js", &env);
        assert_eq!(
            b,
            Some((
                Bound::Bytes(1 << 30),
                "--max-old-space-size=1024".into(),
                "NODE_OPTIONS"
            ))
        );
        assert_eq!(bound("node server.js", &[]), None);
    }

    #[test]
    fn go_memory_limit() {
        let b = bound("/app/server", &[("GOMEMLIMIT", "200MiB")]);
        assert_eq!(
            b,
            Some((
                Bound::Bytes(200 << 20),
                "GOMEMLIMIT=200MiB".into(),
                "GOMEMLIMIT"
            ))
        );
        assert_eq!(bound("/app/server", &[("GOMEMLIMIT", "off")]), None);
        assert_eq!(bound("/app/server", &[]), None);
    }
}
