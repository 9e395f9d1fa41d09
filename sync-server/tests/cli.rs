//! The command line's surface, without a database. (Its database commands are exercised end to
//! end in tests/; this test also makes cargo build the binary those tests run.)

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyward-server"))
}

#[test]
fn help_lists_every_command() {
    let out = server().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "admin", "demo", "verify-audit"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn a_missing_database_url_is_a_clear_error() {
    let out = server()
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is not set"));
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = server()
        .args(["--config", "/nonexistent/keyward.toml", "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
