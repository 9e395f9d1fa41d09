//! Spreadsheet formula injection ("CSV injection"). Excel, LibreOffice and Google Sheets run a
//! cell whose text begins with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula when
//! the file is opened, so a key named `=HYPERLINK("http://evil.example","x")` would become a live
//! link (or a DDE command) on the desk of whoever opens a usage report. As OWASP recommends, such
//! a cell is written with a leading `'`: spreadsheets show it as text and evaluate nothing.
//!
//! [`safe_cell`] guards one text cell before it is quoted (the server writes its reports with
//! it); [`CellGuard`] guards a CSV stream that is already quoted, chunk by chunk (the desktop
//! passes every report it saves through it, so not even a server without the guard can put a
//! formula on the user's disk). Both apply the same rule, [`needs_guard`], so a cell guarded
//! twice is guarded once. A plain number such as `-12` or `+3.5` is left alone: a value, not a
//! formula, and the numbers we write must read back as numbers.

use std::borrow::Cow;

/// The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
pub const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A plain number longer than this is treated as text (and guarded when it starts with a sign),
/// so the stream guard never holds back more than this many bytes. Our numbers are at most 20
/// digits.
pub const MAX_NUMBER_LEN: usize = 40;

fn is_trigger(b: u8) -> bool {
    matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
}

/// A plain decimal number of at most [`MAX_NUMBER_LEN`] characters: an optional sign, then
/// digits with at most one decimal point (`-12`, `+3.5`, `-.5`, `7.`).
pub fn is_plain_number(s: &str) -> bool {
    is_plain_number_bytes(s.as_bytes())
}

fn is_plain_number_bytes(b: &[u8]) -> bool {
    if b.len() > MAX_NUMBER_LEN {
        return false;
    }
    let digits = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let (mut digit, mut point) = (false, false);
    for &c in digits {
        match c {
            b'0'..=b'9' => digit = true,
            b'.' if !point => point = true,
            _ => return false,
        }
    }
    digit
}

/// Whether a spreadsheet would run `cell` as a formula: it starts with one of
/// [`FORMULA_TRIGGERS`] and is not a plain number.
pub fn needs_guard(cell: &str) -> bool {
    cell.as_bytes().first().is_some_and(|&b| is_trigger(b)) && !is_plain_number(cell)
}

/// `cell`, prefixed with `'` when a spreadsheet would otherwise run it as a formula. Apply it to
/// the text of a cell before it is quoted (the quoting, RFC 4180, is the CSV writer's job).
pub fn safe_cell(cell: &str) -> Cow<'_, str> {
    if needs_guard(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the field seen yet.
    #[default]
    FieldStart,
    /// Just after a quoted field's opening quote.
    ContentStart,
    /// The field began with a sign; `pending` holds it and the number characters after it.
    Undecided,
    /// A quoted undecided field, then a quote: its closing one, or the first of an escaped `""`.
    UndecidedQuote,
    /// Decided: the rest of the field passes through.
    Body,
    /// A quoted field, then a quote: its closing one, or the first of an escaped `""`.
    BodyQuote,
}

/// Guards every cell of a CSV stream (RFC 4180: `,` between fields, `\n` or `\r\n` between
/// records, `"` quoting with `""` inside) as [`safe_cell`] would have before it was quoted,
/// whatever the chunk boundaries. It holds back at most [`MAX_NUMBER_LEN`] bytes (a signed
/// field until it is known whether it is a plain number); [`CellGuard::finish`] writes them.
#[derive(Debug, Default)]
pub struct CellGuard {
    state: State,
    quoted: bool,
    pending: Vec<u8>,
}

impl CellGuard {
    pub fn new() -> CellGuard {
        CellGuard::default()
    }

    /// Appends the guarded form of `chunk` to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + 8);
        for &b in chunk {
            self.byte(b, out);
        }
    }

    /// Appends what is still held back; call once, after the last chunk.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.state {
            State::Undecided => self.flush(out),
            State::UndecidedQuote => {
                self.flush(out);
                out.push(b'"');
            }
            _ => {}
        }
        *self = CellGuard::default();
    }

    fn terminator(&self, b: u8) -> bool {
        !self.quoted && matches!(b, b',' | b'\n' | b'\r')
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::FieldStart => {
                if b == b'"' {
                    self.quoted = true;
                    self.state = State::ContentStart;
                    out.push(b);
                } else if self.terminator(b) {
                    // An empty field (a record cannot start with CR: the writer quotes it).
                    out.push(b);
                } else {
                    self.content_start(b, out);
                }
            }
            State::ContentStart => {
                if b == b'"' {
                    self.state = State::BodyQuote;
                    out.push(b);
                } else {
                    self.content_start(b, out);
                }
            }
            State::Undecided => {
                if matches!(b, b'0'..=b'9' | b'.') && self.pending.len() < MAX_NUMBER_LEN {
                    self.pending.push(b);
                } else if self.quoted && b == b'"' {
                    self.state = State::UndecidedQuote;
                } else if self.terminator(b) {
                    self.flush(out);
                    out.push(b);
                    self.state = State::FieldStart;
                } else {
                    // Something no number holds: text after a sign.
                    out.push(b'\'');
                    out.append(&mut self.pending);
                    out.push(b);
                    self.state = State::Body;
                }
            }
            State::UndecidedQuote => {
                if b == b'"' {
                    out.push(b'\'');
                    out.append(&mut self.pending);
                    out.extend_from_slice(b"\"\"");
                    self.state = State::Body;
                } else {
                    self.flush(out);
                    out.push(b'"');
                    self.after_closing_quote(b, out);
                }
            }
            State::Body => {
                if self.quoted && b == b'"' {
                    self.state = State::BodyQuote;
                } else if self.terminator(b) {
                    self.state = State::FieldStart;
                }
                out.push(b);
            }
            State::BodyQuote => {
                if b == b'"' {
                    self.state = State::Body;
                    out.push(b);
                } else {
                    self.after_closing_quote(b, out);
                }
            }
        }
    }

    /// The first character of a field's text.
    fn content_start(&mut self, b: u8, out: &mut Vec<u8>) {
        if matches!(b, b'+' | b'-') {
            self.pending.clear();
            self.pending.push(b);
            self.state = State::Undecided;
            return;
        }
        if is_trigger(b) {
            out.push(b'\'');
        }
        out.push(b);
        self.state = State::Body;
    }

    /// A quoted field ended just before `b`.
    fn after_closing_quote(&mut self, b: u8, out: &mut Vec<u8>) {
        self.quoted = false;
        out.push(b);
        self.state = if self.terminator(b) {
            State::FieldStart
        } else {
            // Not RFC 4180 (text after a closing quote): passed through as it is.
            State::Body
        };
    }

    /// Writes a held-back signed field, guarded unless it is a plain number.
    fn flush(&mut self, out: &mut Vec<u8>) {
        if !is_plain_number_bytes(&self.pending) {
            out.push(b'\'');
        }
        out.append(&mut self.pending);
    }
}

/// Guards a whole CSV text at once (see [`CellGuard`]).
pub fn guard_all(csv: &[u8]) -> Vec<u8> {
    let mut guard = CellGuard::new();
    let mut out = Vec::with_capacity(csv.len() + 16);
    guard.feed(csv, &mut out);
    guard.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formula_cells_are_prefixed_and_others_left_alone() {
        let cases = [
            (
                "=HYPERLINK(\"http://evil.example\",\"x\")",
                "'=HYPERLINK(\"http://evil.example\",\"x\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
            ("-", "'-"),
            ("+", "'+"),
            ("-.", "'-."),
            ("-1e5", "'-1e5"),
            ("billing eu", "billing eu"),
            ("a=b", "a=b"),
            (" =1", " =1"),
            ("'=already", "'=already"),
            ("", ""),
            ("-12", "-12"),
            ("+3.5", "+3.5"),
            ("-.5", "-.5"),
            ("42", "42"),
            ("2026-11-25", "2026-11-25"),
        ];
        for (cell, want) in cases {
            assert_eq!(safe_cell(cell), want, "{cell:?}");
            assert_eq!(
                safe_cell(&safe_cell(cell)),
                want,
                "guarding twice is guarding once"
            );
        }
        let long = format!("-{}", "9".repeat(MAX_NUMBER_LEN));
        assert_eq!(safe_cell(&long), format!("'{long}"));
        assert!(matches!(safe_cell("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_stream_guard_prefixes_inside_the_quotes() {
        let csv = "day,key_id,key_name,allowed\n\
                   2026-11-25,k1,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",3\n\
                   2026-11-25,k2,@SUM(A1),-4\n\
                   2026-11-25,k3,\"-1\",\"-1,5\"\r\n\
                   total,,,-7\n";
        let want = "day,key_id,key_name,allowed\n\
                    2026-11-25,k1,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",3\n\
                    2026-11-25,k2,'@SUM(A1),-4\n\
                    2026-11-25,k3,\"-1\",\"'-1,5\"\r\n\
                    total,,,-7\n";
        for chunk in [1, 2, 3, 7, 4096] {
            let mut guard = CellGuard::new();
            let mut out = Vec::new();
            for piece in csv.as_bytes().chunks(chunk) {
                guard.feed(piece, &mut out);
            }
            guard.finish(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "by {chunk}");
        }
        assert_eq!(guard_all(want.as_bytes()), want.as_bytes(), "idempotent");
        // Held back to the end: a signed last field without a final newline.
        assert_eq!(guard_all(b"a,-5"), b"a,-5");
        assert_eq!(guard_all(b"a,-x"), b"a,'-x");
        assert_eq!(guard_all(b"a,\"-5\""), b"a,\"-5\"");
        assert_eq!(guard_all(b"a,\"-"), b"a,\"'-");
    }

    /// A CSV of `records` as the csv crate writes it, each cell passed through `cell` first.
    fn write(records: &[Vec<String>], cell: impl Fn(&str) -> String) -> Vec<u8> {
        let mut w = ::csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        for r in records {
            w.write_record(r.iter().map(|c| cell(c))).unwrap();
        }
        w.into_inner().unwrap()
    }

    proptest! {
        /// Guarding the written stream equals writing the guarded cells, for any cells and any
        /// chunking.
        #[test]
        fn stream_guard_matches_cell_guard(
            records in prop::collection::vec(
                prop::collection::vec("[-+=@\t\r\n\",. a0-9']{0,8}", 1..5), 1..6),
            chunk in 1usize..17,
        ) {
            let raw = write(&records, str::to_owned);
            let want = write(&records, |c| safe_cell(c).into_owned());
            let mut guard = CellGuard::new();
            let mut out = Vec::new();
            for piece in raw.chunks(chunk) {
                guard.feed(piece, &mut out);
            }
            guard.finish(&mut out);
            prop_assert_eq!(&out, &want);
            prop_assert_eq!(guard_all(&want), want);
        }
    }
}
