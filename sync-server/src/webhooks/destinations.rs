//! Where deliveries may go: every address is checked against the allowed networks before a
//! connection is made, including each address a host name resolves to.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// Why a delivery was not attempted: its destination is not one webhooks may reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: {host} {why}; webhooks are only delivered to public addresses (see KEYWARD_WEBHOOK_ALLOWED_NETWORKS)"
)]
pub struct Refused {
    host: String,
    why: String,
}

/// Resolves endpoint host names for the delivery client and drops every address the policy
/// forbids, so the connection is only ever made to an address that was checked — a name that
/// resolves (or is rebound between two lookups) to 127.0.0.1 or 169.254.169.254 gets no
/// connection at all.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allowed: Arc<[IpNet]>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let ok: Vec<std::net::SocketAddr> = found
                .into_iter()
                .filter(|a| {
                    let fine = keyward_core::webhook_url::destination_allowed(a.ip(), &allowed);
                    if !fine {
                        refused.push(a.ip());
                    }
                    fine
                })
                .collect();
            if ok.is_empty() {
                let kinds: Vec<&str> = refused
                    .iter()
                    .filter_map(|ip| keyward_core::webhook_url::forbidden_kind(*ip))
                    .collect();
                return Err(Box::new(Refused {
                    host,
                    why: format!("resolves only to {} addresses", kinds.join("/")),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The delivery client: no redirects, no proxy (the checked address is the one connected to),
/// names resolved through [`CheckedResolver`] against the `allowed` networks, every request and
/// connection bounded by `timeout`.
pub(crate) fn delivery_client(
    timeout: Duration,
    allowed: &Arc<[IpNet]>,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect is an answer that is not 2xx: a failed attempt, never followed.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver {
            allowed: allowed.clone(),
        }))
        .user_agent(concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// An address literal in a stored URL is connected to without a lookup: checked here instead
/// (the allowed networks may have changed since the endpoint was created).
pub(crate) fn literal_refused(url: &str, allowed: &[IpNet]) -> Option<Refused> {
    let url = reqwest::Url::parse(url).ok()?;
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => std::net::IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    if keyward_core::webhook_url::destination_allowed(ip, allowed) {
        return None;
    }
    Some(Refused {
        host: ip.to_string(),
        why: format!(
            "is a {} address",
            keyward_core::webhook_url::forbidden_kind(ip).unwrap_or("forbidden")
        ),
    })
}

/// The [`Refused`] somewhere in a client error's sources.
pub(crate) fn find_refused(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        source = s.source();
    }
    None
}
