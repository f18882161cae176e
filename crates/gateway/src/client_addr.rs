//! The address a request comes from, for rate limits, login lockouts and audit rows: the peer
//! of the TCP connection, or — only when that peer is a trusted proxy (`--trusted-proxies`) —
//! the client it names in `X-Forwarded-For`, read from the right by core's
//! `peer::client_address`, so a client cannot choose its own address by sending the header
//! itself: whatever it wrote stays to the left of what our proxies appended.

use std::net::IpAddr;

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest};

use crate::client_cert::ProxyTrust;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The request's client address (see [`tollgate_core::peer::client_address`]); `None` only
/// when the connection has no peer address (a test request).
pub(crate) fn client_address(req: &HttpRequest) -> Option<IpAddr> {
    let trusted = req
        .app_data::<web::Data<ProxyTrust>>()
        .map_or(&[][..], |t| t.proxies());
    tollgate_core::peer::client_address(
        req.peer_addr().map(|a| a.ip()),
        req.headers()
            .get_all(&X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok()),
        trusted,
    )
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
