//! The BTF header, checked before the parser sees the file.

/// Checks the BTF header (magic, version, section bounds) against the file
/// size so that truncated files fail fast with a precise reason.
pub(super) fn check_header(b: &[u8]) -> Result<(), String> {
    const HDR_MIN: usize = 24;
    if b.len() < HDR_MIN {
        return Err(format!("{} bytes, shorter than a BTF header", b.len()));
    }
    let u32_at = |o: usize, le: bool| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let le = match [b[0], b[1]] {
        [0x9f, 0xeb] => true,
        [0xeb, 0x9f] => false,
        m => return Err(format!("bad magic {:#04x}{:02x}, not BTF", m[0], m[1])),
    };
    if b[2] != 1 {
        return Err(format!("unsupported BTF version {}", b[2]));
    }
    let hdr_len = u32_at(4, le) as u64;
    let (type_off, type_len) = (u32_at(8, le) as u64, u32_at(12, le) as u64);
    let (str_off, str_len) = (u32_at(16, le) as u64, u32_at(20, le) as u64);
    let len = b.len() as u64;
    if hdr_len < HDR_MIN as u64 || hdr_len > len {
        return Err(format!(
            "header length {hdr_len} invalid for a {len}-byte file"
        ));
    }
    for (what, off, size) in [("type", type_off, type_len), ("string", str_off, str_len)] {
        let end = hdr_len + off + size;
        if end > len {
            return Err(format!(
                "{what} section ends at byte {end} but the file has {len} bytes (truncated?)"
            ));
        }
    }
    Ok(())
}
