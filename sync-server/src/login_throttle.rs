//! Failed sign-ins (and wrong current passwords), counted where every node sees them: in
//! PostgreSQL, so N nodes give no more guesses than one and a restart forgets nothing.
//!
//! Each password check takes a place *before* argon2 runs, atomically (one upsert), in two
//! windows:
//!
//! - the email *and* client network (an IPv4 address, an IPv6 /64): `login_failures_per_window`
//!   checks per window;
//! - the client network alone: four times that, across every email.
//!
//! A check that succeeds (or never ran) gives its places back; a wrong password keeps them.
//! There is deliberately no window per email alone: it would let anyone who knows an admin's
//! email keep that admin out. A correct password from a network with no recent failures for
//! that email is therefore always checked. The price, stated in the README: an attacker with
//! many networks gets `login_failures_per_window` guesses per network and window, each one an
//! argon2 run within the organisation's share of the hashers.
//!
//! Subjects are stored as SHA-256 digests: the table holds no email and no address.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::error::AppError;

/// What a place was taken in: digests of the subjects.
type Subject = Vec<u8>;

#[derive(Clone)]
pub struct LoginThrottle {
    pool: PgPool,
    per_email_and_net: u32,
    per_net: u32,
    window_secs: u64,
}

/// The places one password check holds. Dropped without [`Places::release`], they count as a
/// failure.
#[must_use = "release the places when the check did not fail"]
pub struct Places {
    pool: PgPool,
    subjects: Vec<Subject>,
}

fn subject(kind: &str, parts: &[&str]) -> Subject {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    h.finalize().to_vec()
}

impl LoginThrottle {
    pub fn new(pool: PgPool, per_window: u32, window: Duration) -> LoginThrottle {
        let per_window = per_window.max(1);
        LoginThrottle {
            pool,
            per_email_and_net: per_window,
            per_net: per_window.saturating_mul(4),
            window_secs: window.as_secs().max(1),
        }
    }

    /// Takes the places of a password check of `email` from `ip`, or refuses with 429
    /// `too_many_attempts` (and `Retry-After`) when a window is full.
    pub async fn take(&self, email: &str, ip: Option<IpAddr>) -> Result<Places, AppError> {
        let net = ip.map_or_else(
            || "-".to_owned(),
            |ip| keyward_core::ip::client_net(ip).to_string(),
        );
        let email = email.to_lowercase();
        let mut places = Places {
            pool: self.pool.clone(),
            subjects: Vec::with_capacity(2),
        };
        for (subject, limit) in [
            (subject("net", &[&net]), self.per_net),
            (
                subject("email-net", &[&email, &net]),
                self.per_email_and_net,
            ),
        ] {
            match self.reserve(&subject, limit).await {
                Ok(None) => places.subjects.push(subject),
                Ok(Some(retry_after_secs)) => {
                    places.release().await;
                    return Err(AppError::TooManyRequests {
                        code: "too_many_attempts",
                        detail: format!(
                            "too many failed sign-ins; try again in {retry_after_secs} s"
                        ),
                        retry_after_secs,
                    });
                }
                Err(e) => {
                    places.release().await;
                    return Err(e.into());
                }
            }
        }
        Ok(places)
    }

    /// One place in `subject`'s window: `None` when taken, `Some(seconds)` until the window
    /// ends when it is full.
    async fn reserve(&self, subject: &[u8], limit: u32) -> Result<Option<u64>, sqlx::Error> {
        let taken = sqlx::query_scalar!(
            "INSERT INTO login_attempts AS a (subject, window_start, attempts)
             VALUES ($1, now(), 1)
             ON CONFLICT (subject) DO UPDATE SET
                 window_start = CASE WHEN a.window_start <= now() - make_interval(secs => $3)
                                     THEN now() ELSE a.window_start END,
                 attempts = CASE WHEN a.window_start <= now() - make_interval(secs => $3)
                                 THEN 1 ELSE a.attempts + 1 END
             WHERE a.window_start <= now() - make_interval(secs => $3) OR a.attempts < $2
             RETURNING attempts",
            subject,
            i32::try_from(limit).unwrap_or(i32::MAX),
            self.window_secs as f64,
        )
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let left = sqlx::query_scalar!(
            r#"SELECT COALESCE(EXTRACT(EPOCH FROM (window_start + make_interval(secs => $2) - now()))::float8, 1)
                 AS "left!"
               FROM login_attempts WHERE subject = $1"#,
            subject,
            self.window_secs as f64,
        )
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(1.0);
        Ok(Some((left.ceil() as u64).max(1)))
    }

    /// Deletes windows that ended (the session sweep calls this).
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query!(
            "DELETE FROM login_attempts WHERE window_start < now() - make_interval(secs => $1)",
            self.window_secs as f64,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

impl Places {
    /// The password was right: the places are given back and the email's failures from this
    /// network are forgotten.
    pub async fn succeeded(self) {
        let cleared = match self.subjects.get(1) {
            Some(email_net) => {
                sqlx::query!("DELETE FROM login_attempts WHERE subject = $1", email_net)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
            }
            None => Ok(()),
        };
        if let Err(e) = cleared {
            tracing::warn!(error = %e, "could not clear sign-in failures");
        }
        self.release().await;
    }

    /// The check did not fail (the password was right, or it never ran): the places are given
    /// back.
    pub async fn release(self) {
        if self.subjects.is_empty() {
            return;
        }
        let released = sqlx::query!(
            "UPDATE login_attempts SET attempts = GREATEST(attempts - 1, 0)
             WHERE subject = ANY($1)",
            &self.subjects,
        )
        .execute(&self.pool)
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not give back sign-in throttle places");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_digests_that_keep_their_parts_apart() {
        assert_eq!(subject("net", &["1.2.3.4"]).len(), 32);
        assert_ne!(
            subject("email-net", &["a@x.test", "1.2.3.4"]),
            subject("email-net", &["a@x.test1", ".2.3.4"])
        );
        assert_ne!(
            subject("net", &["1.2.3.4"]),
            subject("email-net", &["1.2.3.4"])
        );
    }
}
