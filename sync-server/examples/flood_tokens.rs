//! Tokens for the load run's floods (scripts/bench.sh), one per line:
//!
//! - `flood_tokens unknown N`: well-formed tokens (valid checksum) for ids that do not exist;
//! - `flood_tokens wrong TOKEN N`: tokens with TOKEN's key id and a wrong secret.

use std::io::Write;
use std::process::ExitCode;

use keyward_core::{ApiKeyToken, Environment, KeyId};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, target, count) = match args.as_slice() {
        [m, n] if m == "unknown" => (m.as_str(), None, n),
        [m, t, n] if m == "wrong" => (m.as_str(), Some(t.as_str()), n),
        _ => {
            eprintln!("usage: flood_tokens unknown N | flood_tokens wrong TOKEN N");
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
        let token = ApiKeyToken::generate(environment, id.unwrap_or_else(KeyId::new));
        if writeln!(out, "{}", token.expose_secret()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    let _ = mode;
    ExitCode::SUCCESS
}
