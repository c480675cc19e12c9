//! The text record format shared by the manifest and the stat cache (docs/design.md
//! section 2): lines of text, paths percent-encoded ([`encode_path`]), and a last line
//! `end <BLAKE3 hex of every byte before it>` ([`seal`], [`open`]) that makes a torn
//! or damaged record fail as a whole before any field is trusted.
//!
//! A keyed record ([`seal_keyed`], [`open_keyed`]: docs/design.md section 2.3) has,
//! before its `end` line, one line `mac <key id> <hex>` per device key it is written
//! with: the keyed BLAKE3 MAC ([`DeviceKey::mac`]) of the body (every byte before the
//! first `mac` line), bound to the set and the replica root. `end` still covers every
//! byte before it, `mac` lines included, so corruption is found without a key, and a
//! reader without a key reads the body as before ([`open`] leaves the `mac` lines out).

use std::path::Path;

use crate::keys::{DeviceKey, Signers};

/// Appends the checksum trailer to `body` (which ends with a newline, or is empty).
pub fn seal(mut body: String) -> Vec<u8> {
    let sum = blake3::hash(body.as_bytes());
    body.push_str(&format!("end {}\n", sum.to_hex()));
    body.into_bytes()
}

/// Appends a `mac` line for each of `signers` (none: as [`seal`]), then the `end` line.
pub fn seal_keyed(mut body: String, signers: Signers<'_>, set: &str, root: &Path) -> Vec<u8> {
    let macs: Vec<String> = signers
        .iter()
        .map(|k| {
            format!(
                "mac {} {}\n",
                k.id(),
                k.mac(set, root, body.as_bytes()).to_hex()
            )
        })
        .collect();
    for m in macs {
        body.push_str(&m);
    }
    seal(body)
}

/// Why a record's trailer does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// No `end` line: the record was cut short (or is not one).
    Truncated,
    /// The `end` line does not match the bytes before it.
    Checksum,
    /// Intact, but no `mac` line of the device key ([`open_keyed`]).
    NoMac,
    /// Intact, but the `mac` line of the device key does not match ([`open_keyed`]):
    /// written for another set or copy, or forged.
    WrongMac,
}

impl Broken {
    /// What it means, for a message.
    pub fn describe(self) -> &'static str {
        match self {
            Broken::Truncated => "cut short (no `end` line)",
            Broken::Checksum => "checksum does not match (torn or corrupted write)",
            Broken::NoMac => {
                "not authenticated by the device key (written without it, or by an older rebound)"
            }
            Broken::WrongMac => {
                "not authenticated by the device key (its MAC does not match: moved from another set or copy, or forged)"
            }
        }
    }
}

/// The body of a record whose trailer holds: every byte before the `end` line, less
/// the `mac` lines at its end (a keyed record read without a key).
///
/// # Errors
/// [`Broken`]: what is wrong with the trailer.
pub fn open(bytes: &[u8]) -> Result<&[u8], Broken> {
    Ok(split_macs(checked(bytes)?).0)
}

/// The body of a record whose trailer holds and that carries a valid MAC of `key`
/// for `set` in `root` (compared in constant time: `blake3::Hash`'s `==`).
///
/// # Errors
/// [`Broken`]: what is wrong with the trailer, or the MAC.
pub fn open_keyed<'b>(
    bytes: &'b [u8],
    key: &DeviceKey,
    set: &str,
    root: &Path,
) -> Result<&'b [u8], Broken> {
    let (body, macs) = split_macs(checked(bytes)?);
    let mut ours = macs.iter().filter(|(id, _)| *id == key.id()).peekable();
    if ours.peek().is_none() {
        return Err(Broken::NoMac);
    }
    let want = key.mac(set, root, body);
    for (_, mac) in ours {
        if blake3::Hash::from_hex(mac).ok() != Some(want) {
            return Err(Broken::WrongMac);
        }
    }
    Ok(body)
}

/// The `mac` lines at the end of `text` (each exactly `mac <16 hex> <64 hex>`, lower
/// case), split off: the body before the first, and each line's key id and MAC.
fn split_macs(text: &[u8]) -> (&[u8], Vec<(&str, &str)>) {
    let mut end = text.len();
    let mut macs = Vec::new();
    while end > 0 {
        let Some(line) = text.get(..end.saturating_sub(1)) else {
            break;
        };
        let start = line.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        let Some(fields) = std::str::from_utf8(line.get(start..).unwrap_or_default())
            .ok()
            .and_then(|l| l.strip_prefix("mac "))
            .and_then(|l| l.split_once(' '))
            .filter(|(id, mac)| is_hex(id, 16) && is_hex(mac, 64))
        else {
            break;
        };
        macs.push(fields);
        end = start;
    }
    macs.reverse();
    (text.get(..end).unwrap_or_default(), macs)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every byte before the `end` line, if the `end` line holds.
fn checked(bytes: &[u8]) -> Result<&[u8], Broken> {
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

    fn key(b: u8) -> DeviceKey {
        DeviceKey::from_bytes(&[b; 32], Path::new("/etc/rebound/device.key"))
    }

    #[test]
    fn a_keyed_record_opens_with_its_key_set_and_root_only() {
        let (k, other) = (key(1), key(2));
        let root = Path::new("/data");
        let signers = Signers {
            keys: [Some(&k), None],
        };
        let r = seal_keyed("a 1\nb 2\n".to_string(), signers, "s", root);
        let text = String::from_utf8(r.clone()).unwrap();
        let mac = k.mac("s", root, b"a 1\nb 2\n").to_hex();
        assert!(
            text.ends_with(&format!(
                "b 2\nmac {} {mac}\nend {}\n",
                k.id(),
                blake3::hash(&r[..r.len() - 69]).to_hex()
            )),
            "{text}"
        );
        assert_eq!(open_keyed(&r, &k, "s", root), Ok(&b"a 1\nb 2\n"[..]));
        // Read without a key: the body, the `mac` line left out.
        assert_eq!(open(&r), Ok(&b"a 1\nb 2\n"[..]));
        assert_eq!(open_keyed(&r, &other, "s", root), Err(Broken::NoMac));
        assert_eq!(open_keyed(&r, &k, "t", root), Err(Broken::WrongMac));
        assert_eq!(
            open_keyed(&r, &k, "s", Path::new("/backup")),
            Err(Broken::WrongMac)
        );
        // A plain record has no MAC.
        assert_eq!(
            open_keyed(&seal("a 1\n".into()), &k, "s", root),
            Err(Broken::NoMac)
        );
        // Every flipped byte is refused with the key.
        for i in 0..r.len() {
            for bit in [0x01, 0x20, 0x80] {
                let mut bad = r.clone();
                bad[i] ^= bit;
                assert!(
                    open_keyed(&bad, &k, "s", root).is_err(),
                    "byte {i} ^ {bit:#x}"
                );
            }
        }
        // The attack of issue 15: the body changed and `end` recomputed (the `mac`
        // line kept, or dropped): the checksum holds, the MAC does not.
        let body = "a 1\nb 2\n";
        let mac_line = &text[body.len()..text.rfind("end ").unwrap()];
        for i in 0..body.len() {
            let mut b = body.as_bytes().to_vec();
            b[i] ^= 0x01;
            let b = String::from_utf8(b).unwrap();
            let kept = seal(format!("{b}{mac_line}"));
            // (The body's last newline flipped joins the `mac` line to it: no MAC.)
            assert!(
                matches!(
                    open_keyed(&kept, &k, "s", root),
                    Err(Broken::WrongMac | Broken::NoMac)
                ),
                "byte {i}"
            );
            assert!(open(&kept).is_ok());
            assert!(open_keyed(&seal(b), &k, "s", root).is_err());
        }
        // Two keys (rekey --key): each reads it with its own.
        let both = seal_keyed(
            "x\n".into(),
            Signers {
                keys: [Some(&k), Some(&other)],
            },
            "s",
            root,
        );
        assert_eq!(open_keyed(&both, &k, "s", root), Ok(&b"x\n"[..]));
        assert_eq!(open_keyed(&both, &other, "s", root), Ok(&b"x\n"[..]));
        assert_eq!(open(&both), Ok(&b"x\n"[..]));
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
