//! EML export: the message exactly as stored, MIME byte for byte.

use std::io::{self, Read, Write};

/// Copies the stored MIME to `out` unchanged and returns the byte count.
/// Streams, so a message of any size needs only a small buffer.
pub fn write_eml(mut mime: impl Read, mut out: impl Write) -> io::Result<u64> {
    let n = io::copy(&mut mime, &mut out)?;
    out.flush()?;
    Ok(n)
}

/// A file name for an exported message: the subject made safe for every
/// common file system, cut to 100 characters, with `.eml`.
pub fn eml_file_name(subject: &str, unique: &str) -> String {
    let safe: String = subject
        .chars()
        .map(|c| {
            if c.is_control() || "<>:\"/\\|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .take(100)
        .collect();
    let safe = safe.trim().trim_end_matches('.');
    if safe.is_empty() {
        format!("{unique}.eml")
    } else {
        format!("{safe} ({unique}).eml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eml_is_the_stored_mime_byte_for_byte() {
        // CRLF and bare LF, 8-bit bytes and a NUL must all survive untouched.
        let mime =
            b"From: a@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\nline\x00\xff\r\n"
                .to_vec();
        let mut out = Vec::new();
        assert_eq!(write_eq_len(&mime, &mut out), mime.len() as u64);
        assert_eq!(out, mime);
    }

    fn write_eq_len(mime: &[u8], out: &mut Vec<u8>) -> u64 {
        write_eml(mime, out).expect("in-memory write")
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(eml_file_name("Re: a/b?", "42"), "Re_ a_b_ (42).eml");
        assert_eq!(eml_file_name("  ", "7"), "7.eml");
    }
}
