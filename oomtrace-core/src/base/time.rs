//! Wall-clock time as records carry it (RFC 3339, UTC).
use std::time::SystemTime;

pub fn rfc3339(time: SystemTime) -> String {
    let time: ::time::OffsetDateTime = time.into();
    time.format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    ::time::OffsetDateTime::parse(text, &::time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}
