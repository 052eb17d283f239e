//! Where webhooks may go: `https` URLs whose host resolves to public addresses only. Private,
//! loopback, link-local, shared, reserved and multicast ranges are refused (at registration and
//! again at every connection, through a DNS resolver that drops them) unless the operator allows
//! them; plain `http` is accepted only for loopback hosts, and only then.

use ip_network::{Ipv4Network, Ipv6Network};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Longest webhook URL.
pub const MAX_URL_LEN: usize = 2_048;
/// Bound on resolving a webhook host at registration.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// True for addresses on the public internet: globally reachable by IANA's IPv4 and IPv6
/// special-purpose registries (as the `ip_network` crate keeps them), and for IPv6 within the
/// global unicast space (2000::/3: site-local `fec0::/10`, IPv4-compatible `::a.b.c.d` and the
/// other reserved blocks are not). IPv4-mapped and NAT64 addresses are judged by the IPv4
/// address inside.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => {
                let o = v6.octets();
                IpAddr::V4([o[12], o[13], o[14], o[15]].into())
            }
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => Ipv4Network::from(v4).is_global(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xe000) == 0x2000
                && Ipv6Network::from(v6).is_global()
                && !REGISTERED_SINCE.iter().any(|(prefix, bits)| {
                    let mask = u128::MAX << (128 - u32::from(*bits));
                    u128::from(v6) & mask == *prefix
                })
        }
    }
}

/// Special-purpose blocks inside 2000::/3 registered after the `ip_network` release we use
/// (0.4.1, 2021): the documentation block 3fff::/20 (RFC 9637, 2024). (SRv6's 5f00::/16 lies
/// outside 2000::/3 already.)
const REGISTERED_SINCE: [(u128, u8); 1] = [(0x3fff << 112, 20)];

/// True for loopback addresses (including IPv4-mapped ones).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The host of the URL when it is an IP address (`[::1]` included).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Checks a webhook URL and resolves its host; the parsed URL, or why it is refused.
pub async fn check_webhook_url(text: &str, allow_private: bool) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("a webhook URL is at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(text).map_err(|_| "not a valid URL".to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a webhook URL must not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err("a webhook URL must not have a fragment".into());
    }
    let host = url.host_str().ok_or("a webhook URL needs a host")?.to_string();
    let port = url.port_or_known_default().ok_or("a webhook URL needs a port")?;
    let addrs: Vec<IpAddr> = match literal_ip(&url) {
        Some(ip) => vec![ip],
        None => match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(a)) => a.map(|s| s.ip()).collect(),
            _ => return Err("the webhook host does not resolve".into()),
        },
    };
    if addrs.is_empty() {
        return Err("the webhook host does not resolve".into());
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_private && addrs.iter().all(|a| is_loopback(*a)) => {}
        _ => return Err("a webhook URL must use https".into()),
    }
    if !allow_private && !addrs.iter().all(|a| is_public(*a)) {
        return Err("the webhook host resolves to a private or reserved address".into());
    }
    Ok(url)
}

/// True when the URL may be called now: the scheme is still allowed and an IP-literal host is
/// public (named hosts are checked by [`PublicResolver`] when connecting).
pub fn may_call(url: &Url, allow_private: bool) -> bool {
    if url.host_str().is_none() {
        return false;
    }
    let literal = literal_ip(url);
    match url.scheme() {
        "https" => allow_private || literal.is_none_or(is_public),
        "http" => allow_private && (literal.is_some_and(is_loopback) || url.host_str() == Some("localhost")),
        _ => false,
    }
}

/// A DNS resolver for webhook calls that drops non-public addresses (unless allowed), so a name
/// that is re-pointed at an internal address after registration is not called.
pub struct PublicResolver {
    pub allow_private: bool,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err("the webhook host resolves to no public address".into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "0.0.0.0",
            "::127.0.0.1",
            "fec0::1",
            "2001:db8::1",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2a00:1450:4001:80b::200e",
        ] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls() {
        assert!(check_webhook_url("http://8.8.8.8/x", false).await.is_err());
        assert!(check_webhook_url("https://10.0.0.1/x", false).await.is_err());
        assert!(check_webhook_url("https://[::127.0.0.1]/x", false).await.is_err());
        assert!(check_webhook_url("https://[fec0::1]/x", false).await.is_err());
        assert!(check_webhook_url("https://127.0.0.1/x", false).await.is_err());
        assert!(check_webhook_url("https://u:p@8.8.8.8/x", false).await.is_err());
        assert!(check_webhook_url("https://8.8.8.8/x", false).await.is_ok());
        assert!(check_webhook_url("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(check_webhook_url("http://10.0.0.1/x", true).await.is_err());
        assert!(check_webhook_url("ftp://8.8.8.8/x", true).await.is_err());
    }
}
