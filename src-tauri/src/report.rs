//! Saving a usage report: validated before the server is asked, streamed chunk by chunk to a
//! temporary file beside the target, renamed into place only when complete.

use std::path::{Path, PathBuf};

use chrono::Duration;
use keyward_client::KeywardClient;
use keyward_core::api::{FieldError, ReportQuery};
use tokio::io::AsyncWriteExt;

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
        if matches!(e, keyward_client::ClientError::Transport(_)) {
            CommandError::new(
                "offline",
                "the server cannot be reached: reports are made by the server, so saving one needs a connection",
            )
        } else {
            CommandError::from(e)
        }
    })?;
    let part = part_path(&path);
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| unwritable(&path, e))?;
    let mut counter = RowCounter::new(req.format);
    let mut bytes: u64 = 0;
    let outcome: Result<(), CommandError> = async {
        while let Some(chunk) = download.chunk().await.map_err(|e| {
            CommandError::new(
                "report_interrupted",
                format!("the report download broke off: {e}"),
            )
        })? {
            counter.feed(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| unwritable(&path, e))?;
        }
        file.flush().await.map_err(|e| unwritable(&path, e))?;
        file.sync_all().await.map_err(|e| unwritable(&path, e))?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    if let Err(e) = tokio::fs::rename(&part, &path).await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(unwritable(&path, e));
    }
    Ok(ReportSaved {
        path: path.display().to_string(),
        bytes,
        rows: counter.rows(),
    })
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
