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
    /// Records up to this one were handled by a previous run (`open_after`).
    skip_through: Option<u64>,
    /// Reads decoded but not handed out yet (a gap report precedes its record).
    queue: std::collections::VecDeque<KmsgRead>,
    buf: Vec<u8>,
}

impl Kmsg {
    /// Opens the kernel log positioned at its end: only new messages are read.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut kmsg = Self::open_at_start(path)?;
        kmsg.fd.get_mut().seek(SeekFrom::End(0))?;
        Ok(kmsg)
    }

    /// Opens the kernel log to read it from the record after `seq` (a
    /// restart resuming where the previous run stopped, `--state-dir`).
    /// Records up to `seq` are skipped; if the kernel overwrote some after
    /// it, the first read is a `Lost` of that many.
    pub fn open_after(path: &Path, seq: u64) -> io::Result<Self> {
        let mut kmsg = Self::open_at_start(path)?;
        kmsg.next_seq = Some(seq + 1);
        kmsg.skip_through = Some(seq);
        Ok(kmsg)
    }

    /// Opens the kernel log at the oldest record it still holds.
    pub fn open_at_start(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(Self {
            // SAFETY: the File owns the fd and keeps it open while the AsyncFd lives.
            fd: unsafe { AsyncFd::register(file) }.map_err(io::Error::from)?,
            next_seq: None,
            skip_through: None,
            queue: Default::default(),
            // The kernel returns EINVAL for a read buffer smaller than a record (max ~8 KiB).
            buf: vec![0; 16 * 1024],
        })
    }

    /// The sequence number the next record read should have (None: nothing
    /// read yet, positioned at the end).
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// Queues the record in `buf[..n]`, preceded by a `Lost` for any sequence gap.
    fn accept(&mut self, n: usize) {
        let Some(record) = parse_record(&self.buf[..n]) else {
            return;
        };
        if self.skip_through.is_some_and(|seq| record.seq <= seq) {
            return;
        }
        let gap = self
            .next_seq
            .map_or(0, |expected| record.seq.saturating_sub(expected));
        self.next_seq = Some(record.seq + 1);
        if gap > 0 {
            self.queue.push_back(KmsgRead::Lost(gap));
        }
        self.queue.push_back(KmsgRead::Record(record));
    }

    pub async fn next(&mut self) -> io::Result<KmsgRead> {
        loop {
            if let Some(read) = self.queue.pop_front() {
                return Ok(read);
            }
            let mut guard = self.fd.readable_mut().await?;
            match guard.try_io(|file| file.get_mut().read(&mut self.buf)) {
                Ok(Ok(n)) => self.accept(n),
                // EPIPE: records were overwritten; the next read resumes at the
                // oldest one still there and the sequence gap tells how many.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next read if one is readable right now, without waiting.
    pub fn try_next(&mut self) -> io::Result<Option<KmsgRead>> {
        while self.queue.is_empty() {
            match self.fd.get_mut().read(&mut self.buf) {
                Ok(n) => self.accept(n),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(self.queue.pop_front())
    }

    /// Puts a read back: it is the next one handed out.
    pub fn unread(&mut self, read: KmsgRead) {
        self.queue.push_front(read);
    }

    /// Everything readable right now, without waiting (used at shutdown so a
    /// kill the kernel already reported is not left behind).
    pub fn drain_now(&mut self) -> io::Result<Vec<KmsgRead>> {
        loop {
            match self.fd.get_mut().read(&mut self.buf) {
                Ok(n) => self.accept(n),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(self.queue.drain(..).collect())
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
