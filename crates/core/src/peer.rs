//! Who is on the other end of a request: the client's address, taken from the TCP peer, or —
//! only when that peer is a trusted reverse proxy (`--trusted-proxies`) — from the
//! `X-Forwarded-For` chain it appended to. A header from any other peer is ignored, so a
//! client cannot choose the address that audit rows and logs attribute to it.

use std::net::IpAddr;

use ipnet::IpNet;

/// Most `X-Forwarded-For` entries looked at; a longer chain is treated as unusable.
const MAX_HOPS: usize = 32;

/// Whether `ip` is in one of `trusted` (an IPv4-mapped IPv6 address counts as IPv4).
#[must_use]
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client's address. Without a trusted peer this is the peer itself. From a trusted
/// proxy, the `X-Forwarded-For` values (`forwarded_for`, every header occurrence in order)
/// are read right to left, skipping trusted proxies, and the first other address is the
/// client; if every hop is trusted, the leftmost is. A malformed chain falls back to the
/// peer: an address a proxy did not vouch for is never believed.
#[must_use]
pub fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.to_canonical())?;
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in forwarded_for {
        for part in value.split(',') {
            if hops.len() == MAX_HOPS {
                return Some(peer);
            }
            match parse_hop(part.trim()) {
                Some(ip) => hops.push(ip),
                None => return Some(peer),
            }
        }
    }
    let mut client = peer;
    for ip in hops.into_iter().rev() {
        client = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]`, `v4:port` or `[v6]:port`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn believes_forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let rows: &[(&str, &[&str], &str)] = &[
            // An untrusted peer: its header is ignored.
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            // A trusted proxy: the address it saw.
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            // Two proxies: skip the trusted hops from the right.
            ("10.0.0.2", &["198.51.100.1, 10.0.0.3"], "198.51.100.1"),
            // A client-supplied prefix is not believed past the first untrusted hop.
            (
                "10.0.0.2",
                &["1.2.3.4, 198.51.100.1, 10.0.0.3"],
                "198.51.100.1",
            ),
            // Several header lines are one list.
            ("10.0.0.2", &["1.2.3.4", "198.51.100.7"], "198.51.100.7"),
            // Ports and brackets.
            ("10.0.0.2", &["198.51.100.1:4711"], "198.51.100.1"),
            ("10.0.0.2", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.2", &["[2001:db8::2]"], "2001:db8::2"),
            // Every hop trusted: the leftmost.
            ("10.0.0.2", &["10.1.1.1, 10.2.2.2"], "10.1.1.1"),
            // Garbage: the proxy did not vouch for anything usable.
            ("10.0.0.2", &["unknown"], "10.0.0.2"),
            ("10.0.0.2", &[""], "10.0.0.2"),
            // No header.
            ("10.0.0.2", &[], "10.0.0.2"),
            // IPv4-mapped IPv6 peers count as IPv4.
            ("::ffff:10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            ("::1", &["198.51.100.1"], "198.51.100.1"),
        ];
        for (peer, headers, want) in rows {
            assert_eq!(
                client_address(Some(ip(peer)), headers.iter().copied(), &trusted),
                Some(ip(want)),
                "{peer} {headers:?}"
            );
        }
        assert_eq!(client_address(None, ["198.51.100.1"], &trusted), None);
        let long = vec!["198.51.100.1"; MAX_HOPS + 1].join(",");
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), [long.as_str()], &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), ["198.51.100.1"], &[]),
            Some(ip("10.0.0.2")),
            "nothing is trusted by default"
        );
    }
}
