//! Sizes as the runtimes write them.

/// A JVM size (`512m`, `2G`, `1048576`): bytes, or k/m/g/t (either case)
/// as powers of 1024.
pub fn jvm_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last()? {
        (at, c) if c.is_ascii_alphabetic() => (&text[..at], c.to_ascii_lowercase()),
        _ => (text, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `GOMEMLIMIT`'s syntax: an integer with an optional unit B, KiB, MiB,
/// GiB or TiB. None: unparsable, or `off` (no limit).
pub fn go_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jvm_sizes() {
        assert_eq!(jvm_size("512m"), Some(512 << 20));
        assert_eq!(jvm_size("2G"), Some(2 << 30));
        assert_eq!(jvm_size("64k"), Some(64 << 10));
        assert_eq!(jvm_size("1048576"), Some(1 << 20));
        assert_eq!(jvm_size("12x"), None);
        assert_eq!(jvm_size("m"), None);
        assert_eq!(jvm_size(""), None);
        assert_eq!(jvm_size("99999999999t"), None);
    }

    #[test]
    fn go_sizes() {
        assert_eq!(go_size("200MiB"), Some(200 << 20));
        assert_eq!(go_size("1GiB"), Some(1 << 30));
        assert_eq!(go_size("4096"), Some(4096));
        assert_eq!(go_size("off"), None);
        assert_eq!(go_size("200MB"), None);
    }
}
