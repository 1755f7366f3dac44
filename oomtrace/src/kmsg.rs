//! Reading the kernel log from `/dev/kmsg`, one record per read, without
//! blocking the runtime (the device supports poll). Records overwritten before
//! we read them are counted, never silently skipped.
use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use tokio::io::unix::AsyncFd;

/// One `/dev/kmsg` record: "prio,seq,usec,flags;message" (+ " KEY=value" lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub level: u8,
    pub seq: u64,
    /// Monotonic time of the message, microseconds since boot.
    pub usec: u64,
    pub text: String,
}

pub fn parse_record(buf: &[u8]) -> Option<KmsgRecord> {
    let line = buf.split(|&b| b == b'\n').next()?;
    let semi = line.iter().position(|&b| b == b';')?;
    let prefix = std::str::from_utf8(&line[..semi]).ok()?;
    let mut fields = prefix.split(',');
    let prio: u32 = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let usec = fields.next()?.parse().ok()?;
    Some(KmsgRecord {
        level: (prio & 7) as u8,
        seq,
        usec,
        text: unescape(&line[semi + 1..]),
    })
}

/// The kernel escapes non-printable bytes as `\xNN` in kmsg records.
fn unescape(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\'
            && text.get(i + 1) == Some(&b'x')
            && i + 4 <= text.len()
            && let Some(v) = std::str::from_utf8(&text[i + 2..i + 4])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(text[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
pub enum KmsgRead {
    Record(KmsgRecord),
    /// The ring overwrote records we had not read yet (EPIPE): `lost` of them.
    Lost(u64),
}

pub struct Kmsg {
    fd: AsyncFd<File>,
    next_seq: Option<u64>,
    /// A record read together with the discovery of a gap before it.
    pending: Option<KmsgRecord>,
    buf: Vec<u8>,
}

impl Kmsg {
    /// Opens the kernel log positioned at its end: only new messages are read.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            // SAFETY: the File owns the fd and keeps it open while the AsyncFd lives.
            fd: unsafe { AsyncFd::register(file) }.map_err(io::Error::from)?,
            next_seq: None,
            pending: None,
            // The kernel returns EINVAL for a read buffer smaller than a record (max ~8 KiB).
            buf: vec![0; 16 * 1024],
        })
    }

    pub async fn next(&mut self) -> io::Result<KmsgRead> {
        if let Some(record) = self.pending.take() {
            return Ok(KmsgRead::Record(record));
        }
        loop {
            let mut guard = self.fd.readable_mut().await?;
            let buf = &mut self.buf;
            match guard.try_io(|file| file.get_mut().read(buf)) {
                Ok(Ok(n)) => {
                    let Some(record) = parse_record(&self.buf[..n]) else {
                        continue;
                    };
                    let gap = self
                        .next_seq
                        .map_or(0, |expected| record.seq.saturating_sub(expected));
                    self.next_seq = Some(record.seq + 1);
                    if gap > 0 {
                        // Report the gap now; the record itself is returned next time.
                        self.pending = Some(record);
                        return Ok(KmsgRead::Lost(gap));
                    }
                    return Ok(KmsgRead::Record(record));
                }
                // EPIPE: records were overwritten; the next read resumes at the
                // oldest one still there and the sequence gap tells how many.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_record_with_dictionary_lines() {
        let raw = b"3,2011,1534288352,-;Memory cgroup out of memory: Killed process 12621 (python3)\n SUBSYSTEM=memory\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.level, 3);
        assert_eq!(r.seq, 2011);
        assert_eq!(r.usec, 1534288352);
        assert_eq!(
            r.text,
            "Memory cgroup out of memory: Killed process 12621 (python3)"
        );
    }

    #[test]
    fn facility_bits_are_masked_and_escapes_undone() {
        let r = parse_record(b"14,5,6,c;tab\\x09here").unwrap();
        assert_eq!(r.level, 6);
        assert_eq!(r.text, "tab\there");
    }

    #[test]
    fn malformed_records_are_rejected() {
        assert_eq!(parse_record(b"no semicolon"), None);
        assert_eq!(parse_record(b"x,1,2,-;msg"), None);
        assert_eq!(parse_record(b""), None);
    }
}
