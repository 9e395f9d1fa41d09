//! The RFC 9110 lexical pieces the header parsers share: `tchar`, optional whitespace, and a
//! cursor that reads tokens and quoted strings.

/// The line does not follow RFC 7239's grammar.
pub(super) struct Malformed;

/// RFC 9110 `tchar`.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_ows(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_ows(*last)
    {
        s = rest;
    }
    s
}

pub(super) struct Cursor<'a> {
    pub(super) s: &'a [u8],
    pub(super) i: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    pub(super) fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.i += 1;
        }
    }

    /// The longest run of `tchar`s at the cursor (possibly empty).
    pub(super) fn token(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// RFC 9110 `quoted-string`, unescaped; the cursor is on the opening quote.
    pub(super) fn quoted_string(&mut self) -> Result<Vec<u8>, Malformed> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek().ok_or(Malformed)?;
            self.i += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    let escaped = self.peek().ok_or(Malformed)?;
                    if !(escaped == b'\t' || escaped >= 0x20) || escaped == 0x7f {
                        return Err(Malformed);
                    }
                    self.i += 1;
                    out.push(escaped);
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | 0x20..=0x7e | 0x80..=0xff => out.push(b),
                _ => return Err(Malformed),
            }
        }
    }
}
