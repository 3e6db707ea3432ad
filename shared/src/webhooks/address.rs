//! Which URLs a webhook may call. Endpoints are tenants' input, and the delivery worker runs
//! inside our network: without a guard an endpoint could aim it at the cloud metadata service,
//! a database on a private address or the server itself. The guard runs at registration
//! ([`check_url`] and [`check_resolves`]) and again at connect time ([`Guarded`], the client's
//! resolver), so a hostname rebound to an internal address after registration is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::ApiError;

/// The longest URL accepted.
pub const MAX_URL: usize = 2048;

/// Whether `ip` is an ordinary public unicast address (the only kind a deployed worker calls).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: the metadata service among them
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    // IPv4-compatible `::a.b.c.d` (deprecated, but some stacks still route it): as its IPv4.
    if !ip.is_loopback() && !ip.is_unspecified() && ip.segments()[..6] == [0; 6] {
        return is_public_v4(ip.to_ipv4().expect("the last 32 bits"));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || first == 0x2002 // 6to4: an IPv4 address inside
        || (first & 0xffc0) == 0xfec0 // site local (deprecated)
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x64 && ip.segments()[1] == 0xff9b) // NAT64: could reach IPv4 inside
}

/// Parses and checks an endpoint URL: `https` (or `http` where private targets are allowed),
/// a host, no credentials in it, and an address literal only if it may be called. A 422
/// naming `field` otherwise.
pub fn check_url(raw: &str, allow_private: bool, field: &str) -> Result<reqwest::Url, ApiError> {
    let refuse = |why: &str| ApiError::validation(field, why);
    if raw.is_empty() || raw.len() > MAX_URL {
        return Err(refuse("a URL of 1 to 2048 characters"));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| refuse("not a valid absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(refuse("the URL must use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("the URL may not carry credentials"));
    }
    let literal = match url.host() {
        None => return Err(refuse("the URL has no host")),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            if !allow_private && is_local_name(name) {
                return Err(refuse("the URL points at a local name"));
            }
            None
        }
    };
    if literal.is_some_and(|ip| !allow_private && !is_public(ip)) {
        return Err(refuse(
            "the URL points at a private, loopback or reserved address",
        ));
    }
    Ok(url)
}

fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".internal")
        || !name.contains('.')
}

/// At registration: the URL's host must resolve, and only to addresses that may be called.
pub async fn check_resolves(
    url: &reqwest::Url,
    allow_private: bool,
    field: &str,
) -> Result<(), ApiError> {
    let Some(url::Host::Domain(name)) = url.host() else {
        return Ok(()); // an address literal was checked by check_url
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map(Iterator::collect)
        .unwrap_or_default();
    // One answer for both: which internal names exist is not for tenants to probe.
    if addrs.is_empty() || (!allow_private && addrs.iter().any(|a| !is_public(a.ip()))) {
        return Err(ApiError::validation(
            field,
            "the URL's host must resolve, and only to public addresses",
        ));
    }
    Ok(())
}

/// The delivery client's resolver: the system's answer with every address that may not be
/// called removed; none left is a connection error (the attempt fails and is retried).
pub struct Guarded {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no address webhooks may call").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At connect time: a name that resolves only to loopback gets no connection from the
    /// delivery client (as a name rebound to an internal address after registration would).
    #[tokio::test]
    async fn the_delivery_client_never_connects_to_a_name_resolving_inside() {
        let guarded = crate::webhooks::WebhookSettings::new(false);
        let refused = guarded
            .client()
            .get("http://localhost:9/")
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{refused:?}").contains("resolves to no address webhooks may call"),
            "{refused:?}"
        );
        // Allowed (local development), the same name is tried: refused by the port instead.
        let open = crate::webhooks::WebhookSettings::new(true);
        let other = open
            .client()
            .get("http://localhost:9/")
            .send()
            .await
            .unwrap_err();
        assert!(
            !format!("{other:?}").contains("webhooks may call"),
            "{other:?}"
        );
    }

    #[test]
    fn internal_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1/hook",
            "https://127.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/hook",
            "https://192.168.1.1/",
            "https://172.16.0.1/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::10.0.0.1]/",
            "https://[2002:a00:1::1]/",
            "https://[fec0::1]/",
            "https://0.0.0.0/",
            "https://localhost/",
            "https://metadata.google.internal/",
            "https://intranet/",
            "ftp://example.com/",
            "https://user:pass@example.com/",
            "not a url",
        ] {
            assert!(check_url(url, false, "url").is_err(), "{url}");
        }
        for url in [
            "https://example.com/hooks",
            "https://93.184.215.14:8443/x",
            "https://[2606:4700::1]/",
        ] {
            assert!(check_url(url, false, "url").is_ok(), "{url}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true, "url").is_ok());
        assert!(
            check_url("http://example.com/", false, "url").is_err(),
            "https only"
        );
    }
}
