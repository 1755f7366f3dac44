//! A process's command line made fit for output: the values of arguments
//! that look like secrets masked, every argument and the whole line capped.
//!
//! Scrubbing happens where the line is read, before it is stored: a secret
//! is never held past the read, so no output, dump or metric can carry it.
//! Names are matched loosely (a false positive masks a harmless value; a
//! false negative leaks a password).

/// What a masked value becomes.
pub const MASK: &str = "********";
/// What marks a cut: the end of a shortened argument, or the last element
/// of a line whose tail was left out.
pub const CUT: &str = "…";
/// Bytes kept of one argument (a classpath runs to kilobytes).
pub const MAX_ARG_BYTES: usize = 512;
/// Bytes kept of the whole line.
pub const MAX_LINE_BYTES: usize = 4096;

/// Words that make an argument's name a secret's (lowercase).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "secret",
    "key",
    "credential",
    "auth",
    "private",
    "cookie",
    "session",
    "signature",
];

/// A scrubbed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    pub args: Vec<String>,
    /// An argument was shortened or the tail of the line left out.
    pub truncated: bool,
}

impl Cmdline {
    /// Upper bound of its heap use.
    pub fn heap_bytes(&self) -> usize {
        self.args.iter().map(|a| a.len() + 24).sum::<usize>() + 24
    }
}

/// `/proc/<pid>/cmdline`'s bytes (NUL-separated) as a scrubbed line.
pub fn scrub_proc_cmdline(bytes: &[u8]) -> Cmdline {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Cmdline::default();
    }
    let args: Vec<String> = bytes
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    scrub(&args)
}

/// The arguments with secrets masked, then capped.
pub fn scrub(args: &[String]) -> Cmdline {
    let mut out = Cmdline::default();
    let mut total = 0usize;
    let mut value_is_secret = false;
    for arg in args {
        let masked = if value_is_secret {
            value_is_secret = false;
            MASK.to_owned()
        } else {
            let (masked, next_is_secret) = scrub_arg(arg);
            value_is_secret = next_is_secret;
            masked
        };
        let kept = cap(&masked, MAX_ARG_BYTES);
        if total + kept.len() > MAX_LINE_BYTES {
            out.args.push(CUT.to_owned());
            out.truncated = true;
            break;
        }
        out.truncated |= kept.len() != masked.len();
        total += kept.len();
        out.args.push(kept);
    }
    out
}

/// One argument with its secret masked, and whether the next argument is
/// the value of this one (`--password hunter2`).
fn scrub_arg(arg: &str) -> (String, bool) {
    if let Some((name, _)) = arg.split_once('=')
        && is_secret_name(name)
    {
        return (format!("{name}={MASK}"), false);
    }
    let flag = arg.starts_with('-') && !arg.contains('=');
    (mask_url_password(arg), flag && is_secret_name(arg))
}

/// `--api-key`, `-Ddb.password`, `DB_PASSWORD`, `apiKey`: its name holds a
/// secret word.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// `scheme://user:pass@host…` with the password masked, in every URL of
/// the argument.
fn mask_url_password(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at_sign), Some(colon)) if colon < at_sign => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at_sign..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max - CUT.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    fn scrubbed(line: &str) -> String {
        scrub(&args(line)).args.join(" ")
    }

    #[test]
    fn every_form_of_a_secret_argument_is_masked() {
        assert_eq!(
            scrubbed("app --password=hunter2 --api-key abc123 -Ddb.Password=x DB_PASSWORD=y"),
            "app --password=******** --api-key ******** -Ddb.Password=******** DB_PASSWORD=********"
        );
        assert_eq!(
            scrubbed("app --TOKEN s3 --verbose"),
            "app --TOKEN ******** --verbose"
        );
        assert_eq!(
            scrubbed("app --client-secret=z"),
            "app --client-secret=********"
        );
        assert_eq!(
            scrubbed("app -Dcredentials.file=/x"),
            "app -Dcredentials.file=********"
        );
        assert_eq!(
            scrubbed("app apikey=1 AUTH=2"),
            "app apikey=******** AUTH=********"
        );
        // The value of a flag given last is nowhere to mask.
        assert_eq!(scrubbed("app --password"), "app --password");
    }

    #[test]
    fn settings_that_are_no_secret_are_kept() {
        let line = "java -Xmx512m -XX:MaxRAMPercentage=75 -jar app.jar --port=8080";
        assert_eq!(scrubbed(line), line);
        assert_eq!(
            scrubbed("node --max-old-space-size=4096 x.js"),
            "node --max-old-space-size=4096 x.js"
        );
        // A value that merely contains a word is not a name.
        assert_eq!(scrubbed("app --mode=password"), "app --mode=password");
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            scrubbed("app --db postgres://u:pw@db:5432/x http://host/a:b@c"),
            "app --db postgres://u:********@db:5432/x http://host/a:b@c"
        );
        assert_eq!(scrubbed("app https://user@host/"), "app https://user@host/");
    }

    #[test]
    fn long_arguments_and_lines_are_cut_and_marked() {
        let long = "a".repeat(MAX_ARG_BYTES * 2);
        let line = scrub(std::slice::from_ref(&long));
        assert!(line.truncated);
        assert!(line.args[0].len() <= MAX_ARG_BYTES && line.args[0].ends_with(CUT));
        let many = vec![long; 64];
        let line = scrub(&many);
        assert!(line.truncated);
        assert_eq!(line.args.last().map(String::as_str), Some(CUT));
        assert!(line.args.iter().map(String::len).sum::<usize>() <= MAX_LINE_BYTES + CUT.len());
        // Multibyte text is cut on a character boundary.
        let wide = scrub(&["é".repeat(MAX_ARG_BYTES)]);
        assert!(wide.args[0].ends_with(CUT));
        assert!(!scrub(&args("a b")).truncated);
    }

    #[test]
    fn proc_bytes_split_on_nul_and_invalid_utf8_is_replaced() {
        let line = scrub_proc_cmdline(b"sh\0-c\0\xffx --token=t\0");
        assert_eq!(line.args, ["sh", "-c", "\u{fffd}x --token=********"]);
        assert_eq!(scrub_proc_cmdline(b""), Cmdline::default());
    }
}
