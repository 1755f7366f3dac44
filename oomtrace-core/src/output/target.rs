//! [`LineTarget`]: where the output thread puts lines (stdout, any
//! writer, or `--output`'s file).
use std::io::{self, Write};

/// Where the writer thread puts lines: one whole line (newline included)
/// at a time, then a flush per batch.
pub trait LineTarget: Send + 'static {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// A nudge while no line comes (a target that retries after failed
    /// writes tries now if due); most have nothing to do.
    fn retry(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> LineTarget for W {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_all(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(self)
    }
}
