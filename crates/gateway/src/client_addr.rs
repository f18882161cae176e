//! The address a request comes from, for rate limiting: the peer of the TCP connection, or —
//! only when that peer is a trusted proxy (`--trusted-proxies`) — the client it names in
//! `X-Forwarded-For`. The header is read from the right, where the nearest proxy appended its
//! peer, skipping hops that are themselves trusted proxies, so a client cannot choose its own
//! address by sending the header itself: whatever it wrote stays to the left of what our
//! proxies appended.

use std::net::IpAddr;

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest};

use crate::client_cert::ProxyTrust;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The request's client address; `None` only when the connection has no peer address (a
/// test request).
pub(crate) fn client_address(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let Some(trust) = req.app_data::<web::Data<ProxyTrust>>() else {
        return Some(peer);
    };
    Some(resolve(peer, trust, forwarded_for(req)))
}

/// Every `X-Forwarded-For` entry, in order, across repeated headers (RFC 9110 §5.3 lets a
/// proxy append a header rather than extend one). An unreadable header yields a sentinel
/// that stops the walk there.
fn forwarded_for(req: &HttpRequest) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in req.headers().get_all(&X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(text) => hops.extend(text.split(',').map(parse_hop)),
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// One hop: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`); anything else,
/// such as `unknown` or an obfuscated identifier, is `None`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = t.parse::<std::net::SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    t.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

/// Walks from the peer leftwards through the hops while each is a trusted proxy; the first
/// address that is not one is the client. A hop that cannot be read ends the walk at the
/// last address read (the proxy that forwarded it vouches for nothing more).
fn resolve(peer: IpAddr, trust: &ProxyTrust, hops: Vec<Option<IpAddr>>) -> IpAddr {
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        if !trust.trusts(client) {
            break;
        }
        match hop {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(peer: &str, xff: &[&str]) -> HttpRequest {
        let trust = ProxyTrust::new(
            vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            None,
        );
        let mut req = actix_web::test::TestRequest::default()
            .peer_addr(std::net::SocketAddr::new(peer.parse().unwrap(), 40000))
            .app_data(web::Data::new(trust));
        for h in xff {
            req = req.append_header(("x-forwarded-for", *h));
        }
        req.to_http_request()
    }

    #[test]
    fn forwarded_for_is_believed_only_through_trusted_proxies() {
        let rows: [(&str, &[&str], &str); 11] = [
            // No proxy: the peer, whatever the header says.
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            ("203.0.113.9", &[], "203.0.113.9"),
            // A trusted proxy: the client it appended.
            ("10.0.0.5", &["198.51.100.1"], "198.51.100.1"),
            // A client's own spoofed entry stays to the left of what the proxy appended.
            ("10.0.0.5", &["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
            // Chains of trusted proxies are walked through.
            ("10.0.0.5", &["198.51.100.1, 10.1.1.1"], "198.51.100.1"),
            ("10.0.0.5", &["198.51.100.1", "10.1.1.1"], "198.51.100.1"),
            // All hops trusted: the leftmost.
            ("10.0.0.5", &["10.2.2.2, 10.1.1.1"], "10.2.2.2"),
            // Unreadable hops stop the walk at the proxy that forwarded them.
            ("10.0.0.5", &["198.51.100.1, unknown"], "10.0.0.5"),
            // Ports and brackets are tolerated; IPv4-mapped IPv6 is IPv4.
            ("10.0.0.5", &["198.51.100.1:4711"], "198.51.100.1"),
            ("fd00::1", &["[2001:db8::7]:443"], "2001:db8::7"),
            ("::ffff:10.0.0.5", &["::ffff:198.51.100.1"], "198.51.100.1"),
        ];
        for (peer, xff, want) in rows {
            let got = client_address(&request(peer, xff)).unwrap();
            assert_eq!(got, want.parse::<IpAddr>().unwrap(), "{peer} {xff:?}");
        }
    }

    #[test]
    fn without_proxy_configuration_the_peer_is_the_client() {
        let req = actix_web::test::TestRequest::default()
            .peer_addr("10.0.0.5:1".parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.1"))
            .to_http_request();
        assert_eq!(client_address(&req), Some("10.0.0.5".parse().unwrap()));
    }
}
