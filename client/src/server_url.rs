//! Which server addresses a client may sign in to: https, or plain http only to this computer
//! (loopback), since the password and the session token would otherwise cross the network in
//! clear text.

use std::net::IpAddr;

use reqwest::Url;

/// Why a server address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    #[error("must be an http:// or https:// address with a host")]
    Invalid,
    #[error("must not hold a user name, a password, a query or a fragment")]
    Extra,
    #[error(
        "plain http:// would send the password and the session in clear text: use https:// \
         (http:// is only allowed to this computer: localhost, 127.0.0.1, ::1)"
    )]
    Insecure,
}

impl ServerUrlError {
    /// A stable code for forms: `insecure_url` or `invalid_url`.
    pub fn code(&self) -> &'static str {
        match self {
            ServerUrlError::Insecure => "insecure_url",
            ServerUrlError::Invalid | ServerUrlError::Extra => "invalid_url",
        }
    }
}

/// Whether `url`'s host is this computer: 127.0.0.0/8, ::1 (also IPv4-mapped) or `localhost`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // The parser has already turned every spelling of an address (`127.1`, `2130706433`) into
    // its dotted or bracketed form.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks a server address typed by a person and returns it trimmed, without trailing slashes:
/// `https://` anywhere, `http://` only to a loopback host.
pub fn check_server_url(raw: &str) -> Result<String, ServerUrlError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|_| ServerUrlError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || trimmed.contains(char::is_whitespace)
    {
        return Err(ServerUrlError::Invalid);
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(ServerUrlError::Extra);
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(ServerUrlError::Insecure);
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_this_computer() {
        for ok in [
            "https://keyward.example.com",
            "https://keyward.example.com/",
            "  https://10.1.2.3:8443/keyward/ ",
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://localhost:8080/",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]",
            // WHATWG parsing: these spell 127.0.0.1.
            "http://127.1",
            "http://2130706433",
        ] {
            assert!(check_server_url(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_server_url(" https://k.example/ ").unwrap(),
            "https://k.example"
        );
        assert_eq!(
            check_server_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        for insecure in [
            "http://keyward.example.com",
            "http://10.0.0.5:8080",
            "http://192.168.1.2",
            "http://[2001:db8::1]",
            "http://0.0.0.0:8080",
            "http://localhost.evil.example",
            "http://localhost.",
            "http://128.0.0.1",
        ] {
            assert_eq!(
                check_server_url(insecure),
                Err(ServerUrlError::Insecure),
                "{insecure}"
            );
        }
        for invalid in [
            "",
            "keyward.example.com",
            "ftp://keyward.example.com",
            "https://",
            "https://exa mple.com",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                check_server_url(invalid),
                Err(ServerUrlError::Invalid),
                "{invalid:?}"
            );
        }
        for extra in [
            "https://user:pw@keyward.example.com",
            "https://keyward.example.com/?x=1",
            "https://keyward.example.com/#top",
        ] {
            assert_eq!(
                check_server_url(extra),
                Err(ServerUrlError::Extra),
                "{extra}"
            );
        }
        assert_eq!(ServerUrlError::Insecure.code(), "insecure_url");
        assert_eq!(ServerUrlError::Invalid.code(), "invalid_url");
    }
}
