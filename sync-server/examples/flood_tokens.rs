//! Tokens for the load run's floods (scripts/bench.sh), one per line:
//!
//! - `flood_tokens unknown N`: well-formed tokens (valid checksum) for random ids that do not
//!   exist (UUIDv4: no timestamp, as an attacker guessing ids would send);
//! - `flood_tokens recent N`: the same with ids forged to look just minted (UUIDv7 of now), which
//!   the filter of known ids cannot rule out, so they go through its global lookup budget;
//! - `flood_tokens wrong TOKEN N`: tokens with TOKEN's key id and a wrong secret.

use std::io::Write;
use std::process::ExitCode;

use keyward_core::{ApiKeyToken, Environment, KeyId};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, target, count) = match args.as_slice() {
        [m, n] if m == "unknown" || m == "recent" => (m.as_str(), None, n),
        [m, t, n] if m == "wrong" => (m.as_str(), Some(t.as_str()), n),
        _ => {
            eprintln!("usage: flood_tokens unknown|recent N | flood_tokens wrong TOKEN N");
            return ExitCode::from(2);
        }
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("N must be a number");
        return ExitCode::from(2);
    };
    let (environment, id) = match target.map(ApiKeyToken::parse) {
        Some(Ok(p)) => (p.environment, Some(p.key_id)),
        Some(Err(e)) => {
            eprintln!("TOKEN is not a Keyward token: {e}");
            return ExitCode::from(2);
        }
        None => (Environment::Live, None),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let id = id.unwrap_or_else(|| match mode {
            "recent" => KeyId::new(),
            _ => KeyId::from_uuid(uuid::Uuid::new_v4()),
        });
        let token = ApiKeyToken::generate(environment, id);
        if writeln!(out, "{}", token.expose_secret()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
