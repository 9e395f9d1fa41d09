//! Saving a usage report: validated before the server is asked, streamed chunk by chunk to a
//! temporary file beside the target, renamed into place only when complete.

use std::path::{Path, PathBuf};

use chrono::Duration;
use keyward_client::KeywardClient;
use keyward_core::api::{FieldError, ReportQuery};
use keyward_core::csv::CellGuard;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::dto::{ReportFormat, ReportRequest, ReportSaved};
use crate::error::CommandError;

/// The server's longest report period (`MAX_REPORT_DAYS` in sync-server's usage module).
pub const MAX_REPORT_DAYS: i64 = 3660;

/// Counts report rows in a body seen chunk by chunk, whatever the chunk boundaries.
///
/// CSV: records are lines outside quoted fields (a key name may hold a newline), less the
/// header and the total line. JSON: each row object is the only place `"day":` appears outside
/// a string (a quote inside a string is escaped), so rows are its occurrences.
#[derive(Debug, Default)]
pub struct RowCounter {
    json: bool,
    in_quotes: bool,
    records: u64,
    /// The last bytes of the previous chunk (JSON: a marker split across chunks).
    tail: Vec<u8>,
}

const JSON_MARKER: &[u8] = b"\"day\":";

impl RowCounter {
    pub fn new(format: ReportFormat) -> RowCounter {
        RowCounter {
            json: format == ReportFormat::Json,
            ..RowCounter::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.json {
            let mut joined = std::mem::take(&mut self.tail);
            let carried = joined.len();
            joined.extend_from_slice(chunk);
            // Count markers that end inside the new bytes (those within the tail were counted).
            self.records += joined
                .windows(JSON_MARKER.len())
                .enumerate()
                .filter(|(i, w)| *w == JSON_MARKER && i + JSON_MARKER.len() > carried)
                .count() as u64;
            let keep = joined.len().min(JSON_MARKER.len() - 1);
            self.tail = joined[joined.len() - keep..].to_vec();
        } else {
            for &b in chunk {
                match b {
                    b'"' => self.in_quotes = !self.in_quotes,
                    b'\n' if !self.in_quotes => self.records += 1,
                    _ => {}
                }
            }
        }
    }

    /// Data rows: CSV records less the header and total lines; JSON row objects.
    pub fn rows(&self) -> u64 {
        if self.json {
            self.records
        } else {
            self.records.saturating_sub(2)
        }
    }
}

fn field(name: &str, code: &str, message: impl Into<String>) -> CommandError {
    CommandError::validation(vec![FieldError::new(name, code, message)])
}

/// Checks the request as the server would, and that the file can be written where asked.
pub fn validate(req: &ReportRequest) -> Result<PathBuf, CommandError> {
    if req.from >= req.to {
        return Err(field("from", "out_of_range", "must be before the end"));
    }
    if req.to - req.from > Duration::days(MAX_REPORT_DAYS) {
        return Err(field(
            "from",
            "out_of_range",
            format!("a report spans at most {MAX_REPORT_DAYS} days"),
        ));
    }
    let path = PathBuf::from(req.path.trim());
    if req.path.trim().is_empty() || !path.is_absolute() {
        return Err(field("path", "invalid", "choose where to save the report"));
    }
    if path.is_dir() {
        return Err(field("path", "invalid", "is a folder; choose a file name"));
    }
    match path.parent() {
        Some(dir) if dir.is_dir() => Ok(path),
        _ => Err(field("path", "not_found", "the folder does not exist")),
    }
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

fn unwritable(path: &Path, e: std::io::Error) -> CommandError {
    CommandError::new(
        "unwritable",
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Streams `GET /v1/reports/usage` to `req.path`.
pub async fn save(
    client: &KeywardClient,
    req: &ReportRequest,
) -> Result<ReportSaved, CommandError> {
    let path = validate(req)?;
    let q = ReportQuery {
        from: Some(req.from),
        to: Some(req.to),
        format: Some(match req.format {
            ReportFormat::Csv => keyward_core::api::ReportFormat::Csv,
            ReportFormat::Json => keyward_core::api::ReportFormat::Json,
        }),
    };
    let mut download = client.usage_report_download(&q).await.map_err(|e| {
        if e.is_unreachable() {
            CommandError::new(
                "offline",
                "the server cannot be reached: reports are made by the server, so saving one needs a connection",
            )
        } else {
            CommandError::from(e)
        }
    })?;
    let part = part_path(&path);
    let file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| unwritable(&path, e))?;
    let mut writer = ReportWriter::new(file, req.format);
    // `writer` (and the file) is dropped inside: the file is closed before the rename.
    let outcome: Result<(u64, u64), CommandError> = async {
        while let Some(chunk) = download.chunk().await.map_err(|e| {
            CommandError::new(
                "report_interrupted",
                format!("the report download broke off: {e}"),
            )
        })? {
            writer
                .write(&chunk)
                .await
                .map_err(|e| unwritable(&path, e))?;
        }
        let written = writer.finish().await.map_err(|e| unwritable(&path, e))?;
        writer
            .into_inner()
            .sync_all()
            .await
            .map_err(|e| unwritable(&path, e))?;
        Ok(written)
    }
    .await;
    let (bytes, rows) = match outcome {
        Ok(written) => written,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    if let Err(e) = tokio::fs::rename(&part, &path).await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(unwritable(&path, e));
    }
    Ok(ReportSaved {
        path: path.display().to_string(),
        bytes,
        rows,
    })
}

/// Writes a report body to its file as it arrives. A CSV passes through
/// [`keyward_core::csv::CellGuard`] on its way: a cell a spreadsheet would run as a formula
/// (a key named `=HYPERLINK(...)`) is written as text (`'=HYPERLINK(...)`), even when the server
/// did not guard it already (a guarded cell is left as it is).
pub struct ReportWriter<W> {
    out: W,
    guard: Option<CellGuard>,
    counter: RowCounter,
    bytes: u64,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> ReportWriter<W> {
    pub fn new(out: W, format: ReportFormat) -> ReportWriter<W> {
        ReportWriter {
            out,
            guard: (format == ReportFormat::Csv).then(CellGuard::new),
            counter: RowCounter::new(format),
            bytes: 0,
            buf: Vec::new(),
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let data = match &mut self.guard {
            Some(guard) => {
                self.buf.clear();
                guard.feed(chunk, &mut self.buf);
                &self.buf[..]
            }
            None => chunk,
        };
        self.counter.feed(data);
        self.bytes += data.len() as u64;
        self.out.write_all(data).await
    }

    /// Writes what the guard still holds and flushes: `(bytes written, data rows)`.
    pub async fn finish(&mut self) -> std::io::Result<(u64, u64)> {
        if let Some(mut guard) = self.guard.take() {
            let mut rest = Vec::new();
            guard.finish(&mut rest);
            self.counter.feed(&rest);
            self.bytes += rest.len() as u64;
            self.out.write_all(&rest).await?;
        }
        self.out.flush().await?;
        Ok((self.bytes, self.counter.rows()))
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn count(format: ReportFormat, body: &str, chunk: usize) -> u64 {
        let mut c = RowCounter::new(format);
        for piece in body.as_bytes().chunks(chunk) {
            c.feed(piece);
        }
        c.rows()
    }

    #[test]
    fn rows_are_counted_across_any_chunking() {
        let csv = "day,key_id,key_name,allowed,rate_limited,rejected\n\
                   2026-11-25,k1,\"multi\nline, \"\"name\"\"\",3,0,0\n\
                   2026-11-25,k2,plain,1,0,0\n\
                   total,,,4,0,0\n";
        let json = r#"{"from":"x","to":"y","rows":[{"day":"2026-11-25","key_id":"k1","key_name":"a \"day\": b","allowed":3,"rate_limited":0,"rejected":0},{"day":"2026-11-26","key_id":"k2","key_name":"c","allowed":1,"rate_limited":0,"rejected":0}],"total":{"allowed":4,"rate_limited":0,"rejected":0}}"#;
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(count(ReportFormat::Csv, csv, chunk), 2, "csv by {chunk}");
            assert_eq!(count(ReportFormat::Json, json, chunk), 2, "json by {chunk}");
        }
        assert_eq!(
            count(
                ReportFormat::Csv,
                "day,key_id,key_name,allowed,rate_limited,rejected\ntotal,,,0,0,0\n",
                3
            ),
            0
        );
    }

    #[tokio::test]
    async fn saved_csv_cells_cannot_be_formulas() {
        // As a server without the guard would send it, cut at awkward places.
        let body = "day,key_id,key_name,allowed,rate_limited,rejected\n\
                    2026-11-25,k1,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",3,0,0\n\
                    2026-11-25,k2,@SUM(A1:A9),1,0,0\n\
                    2026-11-25,k3,\"'=guarded already\",1,0,0\n\
                    2026-11-25,k4,-5,1,0,0\n\
                    total,,,6,0,0\n";
        let want = body
            .replace("\"=HYPERLINK", "\"'=HYPERLINK")
            .replace(",@SUM", ",'@SUM");
        for chunk in [1, 3, 17, 4096] {
            let mut writer = ReportWriter::new(Vec::new(), ReportFormat::Csv);
            for piece in body.as_bytes().chunks(chunk) {
                writer.write(piece).await.unwrap();
            }
            let (bytes, rows) = (writer.bytes, writer.counter.rows());
            assert_eq!(rows, 4);
            let out = String::from_utf8(writer.out.clone()).unwrap();
            assert_eq!(out, want, "by {chunk}");
            assert_eq!(bytes, want.len() as u64);
            assert_eq!(writer.finish().await.unwrap(), (want.len() as u64, 4));
        }
        // A signed field held back to the very end is written by `finish`.
        let mut writer = ReportWriter::new(Vec::new(), ReportFormat::Csv);
        writer.write(b"a,-5").await.unwrap();
        assert_eq!(writer.out, b"a,");
        writer.write(b"0").await.unwrap();
        assert_eq!(writer.finish().await.unwrap(), (5, 0));
        assert_eq!(writer.into_inner(), b"a,-50");
        let mut writer = ReportWriter::new(Vec::new(), ReportFormat::Csv);
        writer.write(b"a,\"-").await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(writer.into_inner(), b"a,\"'-");
        // JSON passes through untouched.
        let json = r#"{"rows":[{"key_name":"=HYPERLINK(\"x\")"}]}"#;
        let mut writer = ReportWriter::new(Vec::new(), ReportFormat::Json);
        writer.write(json.as_bytes()).await.unwrap();
        assert_eq!(writer.out, json.as_bytes());
    }

    #[test]
    fn requests_are_validated_before_asking_the_server() {
        let dir = std::env::temp_dir();
        let now = Utc::now();
        let ok = ReportRequest {
            path: dir.join("r.csv").display().to_string(),
            from: now - Duration::days(30),
            to: now,
            format: ReportFormat::Csv,
        };
        assert!(validate(&ok).is_ok());
        let code = |r: ReportRequest| validate(&r).unwrap_err().fields[0].field.clone();
        assert_eq!(
            code(ReportRequest {
                from: now,
                ..ok.clone()
            }),
            "from"
        );
        assert_eq!(
            code(ReportRequest {
                from: now - Duration::days(MAX_REPORT_DAYS + 1),
                ..ok.clone()
            }),
            "from"
        );
        assert_eq!(
            code(ReportRequest {
                path: "".into(),
                ..ok.clone()
            }),
            "path"
        );
        assert_eq!(
            code(ReportRequest {
                path: "relative.csv".into(),
                ..ok.clone()
            }),
            "path"
        );
        assert_eq!(
            code(ReportRequest {
                path: dir
                    .join("no-such-dir-kw")
                    .join("r.csv")
                    .display()
                    .to_string(),
                ..ok.clone()
            }),
            "path"
        );
        assert_eq!(
            code(ReportRequest {
                path: dir.display().to_string(),
                ..ok
            }),
            "path"
        );
    }
}
