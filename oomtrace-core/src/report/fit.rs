//! What a line read into the open report says about that report.

/// How one line fits the report it was read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// Recorded, or kept in the report's lines only.
    Belongs,
    /// A line of another report mixed into this one (a second column line,
    /// counter, summary; a pid listed twice; a kill line for another pid
    /// than the summary's).
    Interleaved,
    /// A number no kernel prints: left out of the report's parts.
    Implausible,
}
