//! The text record format shared by the manifest and the stat cache (docs/design.md
//! section 2): lines of text, paths percent-encoded ([`encode_path`]), and a last line
//! `end <BLAKE3 hex of every byte before it>` ([`seal`], [`open`]) that makes a torn
//! or damaged record fail as a whole before any field is trusted. The trailer is the
//! one place an authenticated one (a MAC or a signature) goes next.

/// Appends the checksum trailer to `body` (which ends with a newline, or is empty).
pub fn seal(mut body: String) -> Vec<u8> {
    let sum = blake3::hash(body.as_bytes());
    body.push_str(&format!("end {}\n", sum.to_hex()));
    body.into_bytes()
}

/// Why a record's trailer does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// No `end` line: the record was cut short (or is not one).
    Truncated,
    /// The `end` line does not match the bytes before it.
    Checksum,
}

/// The body of a record whose trailer holds (every byte before the `end` line).
///
/// # Errors
/// [`Broken`]: what is wrong with the trailer.
pub fn open(bytes: &[u8]) -> Result<&[u8], Broken> {
    let body_end = match bytes.strip_suffix(b"\n") {
        Some(b) => b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1),
        None => return Err(Broken::Truncated),
    };
    let (body, last) = bytes.split_at(body_end);
    let last = std::str::from_utf8(last).map_err(|_| Broken::Truncated)?;
    let sum = last
        .strip_prefix("end ")
        .and_then(|s| s.strip_suffix('\n'))
        .ok_or(Broken::Truncated)?;
    if sum != blake3::hash(body).to_hex().as_str() {
        return Err(Broken::Checksum);
    }
    Ok(body)
}

/// Percent-encodes every byte outside printable ASCII, plus space and `%`.
pub fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for &b in p.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded path; a path with nothing encoded (the usual case) is
/// returned as it is, without a copy.
pub fn decode_path(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    let b = s.as_bytes();
    if b.iter().all(|&c| c.is_ascii_graphic() && c != b'%') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                // Exactly two upper-case hex digits: `from_str_radix` alone would also
                // take a sign (`%+A`), a second spelling of the same byte.
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                {
                    return None;
                }
                let v = u8::from_str_radix(hex, 16).ok()?;
                if v.is_ascii_graphic() && v != b'%' {
                    return None; // not canonical
                }
                out.push(v);
                i += 3;
            }
            c if c.is_ascii_graphic() => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_opens_and_any_change_breaks_it() {
        let r = seal("a 1\nb 2\n".to_string());
        assert_eq!(open(&r), Ok(&b"a 1\nb 2\n"[..]));
        for i in 0..r.len() - 1 {
            let mut bad = r.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad).is_err(), "byte {i} flipped");
        }
        assert_eq!(open(&r[..r.len() - 1]), Err(Broken::Truncated));
        assert_eq!(open(b""), Err(Broken::Truncated));
    }

    #[test]
    fn paths_round_trip_and_only_canonical_escapes_decode() {
        for p in ["plain/path.txt", "with space", "100%", "caf\u{e9}", "a\nb"] {
            let e = encode_path(p);
            assert!(e.bytes().all(|b| b.is_ascii_graphic()), "{e}");
            assert_eq!(decode_path(&e).as_deref(), Some(p));
        }
        for bad in ["%+A", "%2a", "%41", "%4", "a b"] {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
    }
}
