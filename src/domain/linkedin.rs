//! The `Connections.csv` of a LinkedIn data export, parsed: any preamble (`Notes:` …) before the
//! header line, an optional UTF-8 BOM, RFC 4180 quoting (commas and newlines inside quotes), CRLF
//! or LF, blank emails. Rows that cannot be read are reported by line, never fatal.

use super::account::email_sha256;
use super::profile::normalise_linkedin_url;

/// The header line LinkedIn writes (the columns, in this order).
pub const HEADER: &str = "First Name,Last Name,URL,Email Address,Company,Position,Connected On";
/// Most data rows one import takes.
pub const MAX_ROWS: usize = 30_000;
/// Largest upload, in bytes.
pub const MAX_BYTES: usize = 5 * 1024 * 1024;

const COLUMNS: usize = 7;
const URL_COLUMN: usize = 2;
const EMAIL_COLUMN: usize = 3;

/// One row, reduced to what matching needs (nothing else of it is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// sha256 of the normalised email, when the row has one.
    pub email_sha256: Option<Vec<u8>>,
    /// The normalised LinkedIn URL, when the row has a valid one.
    pub linkedin_url: Option<String>,
}

/// A row that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// What reading a file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Data rows read, the unreadable ones included.
    pub rows: usize,
    pub matchable: Vec<Row>,
    pub errors: Vec<RowError>,
}

/// Why a file cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No header line `First Name,Last Name,URL,...`.
    NoHeader,
    /// More than [`MAX_ROWS`] data rows.
    TooManyRows,
}

/// Where the data starts: the byte offset just past the header line and that line's 1-based
/// number. The header is the first line that reads [`HEADER`] (after a BOM, surrounding spaces
/// and a CR); whatever comes before it is preamble.
pub fn find_header(bytes: &[u8]) -> Option<(usize, u64)> {
    let mut offset = 0;
    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        offset += line.len();
        let content = line.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(line);
        if content.trim_ascii() == HEADER.as_bytes() {
            return Some((offset, i as u64 + 1));
        }
    }
    None
}

/// Reads a `Connections.csv` export.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let (start, header_line) = find_header(bytes).ok_or(ParseError::NoHeader)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[start..]);
    let data = &bytes[start..];
    let (mut counted_to, mut lines_before) = (0usize, 0u64);
    let mut parsed = Parsed {
        rows: 0,
        matchable: vec![],
        errors: vec![],
    };
    let mut record = csv::ByteRecord::new();
    loop {
        // the csv crate's own line numbers skip blank lines: count newlines up to the record's
        // first byte instead (records come in order, so this is one pass over the file)
        let mut line_of = |pos: Option<&csv::Position>| {
            let at = pos.map_or(counted_to, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
            let at = at.min(data.len()).max(counted_to);
            // a record's position is where the blank lines before it start
            let at = at + data[at..].iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            lines_before += data[counted_to..at].iter().filter(|b| **b == b'\n').count() as u64;
            counted_to = at;
            header_line + lines_before + 1
        };
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = line_of(record.position());
                if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                    continue;
                }
                parsed.rows += 1;
                if parsed.rows > MAX_ROWS {
                    return Err(ParseError::TooManyRows);
                }
                if record.len() != COLUMNS {
                    parsed.errors.push(RowError {
                        line,
                        message: format!("expected {COLUMNS} fields, found {}", record.len()),
                    });
                    continue;
                }
                let field = |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default()).ok();
                let (Some(url), Some(email)) = (field(URL_COLUMN), field(EMAIL_COLUMN)) else {
                    parsed.errors.push(RowError {
                        line,
                        message: "not valid UTF-8".into(),
                    });
                    continue;
                };
                let email = email.trim();
                parsed.matchable.push(Row {
                    line,
                    email_sha256: (!email.is_empty()).then(|| email_sha256(email)),
                    linkedin_url: normalise_linkedin_url(url),
                });
            }
            Err(e) => {
                parsed.rows += 1;
                if parsed.rows > MAX_ROWS {
                    return Err(ParseError::TooManyRows);
                }
                let line = line_of(e.position());
                parsed.errors.push(RowError {
                    line,
                    message: "cannot read this row".into(),
                });
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXPORT: &str = "\u{feff}Notes:\r\n\"When exporting your connection data, you may notice that some of the email addresses are missing, see https://www.linkedin.com/help.\"\r\n\r\nFirst Name,Last Name,URL,Email Address,Company,Position,Connected On\r\nAnn,Lee,https://www.linkedin.com/in/ann-lee,,\"Acme, Inc.\",CTO,01 Dec 2026\r\nBo,Ng,https://www.linkedin.com/in/bo,Bo@Example.com ,Initech,\"Lead \"\"Dev\"\"\",02 Dec 2026\r\n";

    #[test]
    fn a_real_export_parses() {
        let p = parse(EXPORT.as_bytes()).expect("parses");
        assert_eq!(p.rows, 2);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.matchable[0].line, 5);
        assert_eq!(p.matchable[0].email_sha256, None);
        assert_eq!(
            p.matchable[0].linkedin_url.as_deref(),
            Some("https://www.linkedin.com/in/ann-lee")
        );
        assert_eq!(p.matchable[1].line, 6);
        assert_eq!(p.matchable[1].email_sha256, Some(email_sha256("bo@example.com")));
    }

    #[test]
    fn lf_no_preamble_no_bom_and_bad_rows() {
        let text =
            format!("{HEADER}\nA,B,https://linkedin.com/in/a,a@x.com,C,D,E\nshort,row\n\nX,Y,\"multi\nline\",,C,D,E\n");
        let p = parse(text.as_bytes()).expect("parses");
        assert_eq!(p.rows, 3);
        assert_eq!(
            p.errors,
            vec![RowError {
                line: 3,
                message: "expected 7 fields, found 2".into()
            }]
        );
        assert_eq!(p.matchable.len(), 2);
        assert_eq!(p.matchable[1].line, 5);
        assert_eq!(p.matchable[1].linkedin_url, None);
    }

    #[test]
    fn non_utf8_rows_are_errors_of_their_own() {
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend_from_slice(
            b"A,B,https://linkedin.com/in/a,\xff@x.com,C,D,E\nA,B,https://linkedin.com/in/b,,C,D,E\n",
        );
        let p = parse(&bytes).expect("parses");
        assert_eq!(p.rows, 2);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 2);
        assert_eq!(p.matchable.len(), 1);
    }

    #[test]
    fn no_header_and_too_many_rows() {
        assert_eq!(parse(b"Name,Email\nA,a@x.com\n"), Err(ParseError::NoHeader));
        assert_eq!(parse(b""), Err(ParseError::NoHeader));
        let mut big = format!("{HEADER}\n");
        for _ in 0..=MAX_ROWS {
            big.push_str("A,B,,,C,D,E\n");
        }
        assert_eq!(parse(big.as_bytes()), Err(ParseError::TooManyRows));
        let header_only = HEADER.to_string();
        assert_eq!(parse(header_only.as_bytes()).map(|p| p.rows), Ok(0));
    }

    proptest! {
        #[test]
        fn the_header_is_found_after_any_preamble(
            preamble in prop::collection::vec("[^\r\n]{0,80}", 0..6),
            crlf in prop::bool::ANY,
            bom in prop::bool::ANY,
        ) {
            prop_assume!(preamble.iter().all(|l| l.trim() != HEADER));
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            if bom {
                text.push('\u{feff}');
            }
            for l in &preamble {
                text.push_str(l);
                text.push_str(nl);
            }
            text.push_str(HEADER);
            text.push_str(nl);
            text.push_str("A,B,https://linkedin.com/in/ann,,C,D,E");
            text.push_str(nl);
            let (_, line) = find_header(text.as_bytes()).expect("header found");
            prop_assert_eq!(line, preamble.len() as u64 + 1);
            let p = parse(text.as_bytes()).expect("parses");
            prop_assert_eq!(p.rows, 1);
            prop_assert_eq!(p.matchable[0].line, preamble.len() as u64 + 2);
        }

        #[test]
        fn parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
            let mut with_header = format!("{HEADER}\n").into_bytes();
            with_header.extend(&bytes);
            let _ = parse(&with_header);
        }
    }
}
