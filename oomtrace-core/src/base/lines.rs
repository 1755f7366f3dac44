//! Lines of untrusted input read with a cap, so one endless line (a FIFO,
//! `/dev/zero`, a log without newlines) cannot take memory without bound.

use std::io::{self, BufRead};

/// Reads one line (without its `\n`) into `buf`, keeping at most `cap`
/// bytes and discarding the rest of a longer line. `Ok(None)` at end of
/// input; otherwise `Ok(Some(cut))`, `cut` telling whether bytes were
/// dropped. A last line without `\n` is a line.
pub fn read_line_capped<R: BufRead + ?Sized>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut any = false;
    let mut cut = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (line, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        if line.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&line[..line.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(Some(cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<(Vec<u8>, bool)> {
        let mut r = io::BufReader::with_capacity(3, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(cut) = read_line_capped(&mut r, &mut buf, cap).unwrap() {
            out.push((buf.clone(), cut));
        }
        out
    }

    #[test]
    fn capped_lines() {
        let l = |s: &str, cut| (s.as_bytes().to_vec(), cut);
        assert_eq!(lines(b"", 10), []);
        assert_eq!(lines(b"\n", 10), [l("", false)]);
        assert_eq!(lines(b"ab\ncd", 10), [l("ab", false), l("cd", false)]);
        assert_eq!(
            lines(b"abcdefgh\nxy\n", 4),
            [l("abcd", true), l("xy", false)]
        );
        assert_eq!(lines(b"abcdefgh", 4), [l("abcd", true)]);
    }
}
