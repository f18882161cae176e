//! Which addresses an outbound call may reach: none of the IANA special-purpose registries.
//!
//! The list is the registries themselves, kept as IANA publishes them beside this file:
//! `iana-ipv4-special-registry.csv` and `iana-ipv6-special-registry.csv`, the CSV downloads of
//! <https://www.iana.org/assignments/iana-ipv4-special-registry/> and
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/> (rows as of 2026-07-18, the
//! IPv6 registry's latest row being RFC 9780 of 2025-04). To update, replace the two files
//! with IANA's current downloads; the tests check every row. Every row is refused, whatever
//! its "Globally Reachable" column says: anycast relays and protocol assignments are no place
//! for a client's documents either.
//!
//! Beyond the registries: multicast (the IANA multicast registries, `224.0.0.0/4`,
//! `ff00::/8`), and every IPv6 address outside `2000::/3`, the only global unicast allocation
//! of the IANA IPv6 Address Space registry (the rest is reserved by the IETF). IPv4-mapped
//! (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) addresses are judged by their IPv4
//! address.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

const IPV4_CSV: &str = include_str!("iana-ipv4-special-registry.csv");
const IPV6_CSV: &str = include_str!("iana-ipv6-special-registry.csv");

/// One registry row: its address blocks and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The blocks of the row's "Address Block" (one, or a few for a row such as NAT64/DNS64
    /// Discovery).
    pub blocks: Vec<IpNet>,
    /// The row's "Name".
    pub name: String,
}

/// Both registries, parsed once. `None` when the embedded files do not parse (the tests make
/// that impossible); every address is then refused, failing closed.
static REGISTRY: LazyLock<Option<Vec<Row>>> = LazyLock::new(|| {
    let rows = parse_registry(IPV4_CSV).and_then(|mut v4| {
        v4.extend(parse_registry(IPV6_CSV)?);
        Ok(v4)
    });
    match rows {
        Ok(rows) => Some(rows),
        Err(e) => {
            tracing::error!(error = %e, "the embedded IANA special-purpose registries do not parse; every outbound address is refused");
            None
        }
    }
});

/// Every row of both registries (IPv4 first), as parsed from the embedded CSV files.
#[must_use]
pub fn registry() -> &'static [Row] {
    REGISTRY.as_deref().unwrap_or(&[])
}

/// The registry row that holds `ip`, if any (IPv4-mapped and -compatible addresses are looked
/// up by their IPv4 address).
#[must_use]
pub fn special_purpose_row(ip: IpAddr) -> Option<&'static Row> {
    let ip = canonical(ip);
    registry()
        .iter()
        .find(|row| row.blocks.iter().any(|b| b.contains(&ip)))
}

/// Whether an outbound call must not reach `ip`: it is in a special-purpose registry, or
/// multicast, or IPv6 outside global unicast. See the module documentation.
#[must_use]
pub fn is_special(ip: IpAddr) -> bool {
    if REGISTRY.is_none() {
        return true;
    }
    let ip = canonical(ip);
    if special_purpose_row(ip).is_some() {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast() || (v6.segments()[0] & 0xe000) != 0x2000,
    }
}

/// Whether `ip` is a loopback address (`127.0.0.0/8`, `::1`, or IPv4 loopback mapped into
/// IPv6): what `--outbound-allow-loopback` lets through.
#[must_use]
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

/// An IPv6 address carrying an IPv4 address (mapped `::ffff:0:0/96`, or compatible `::/96`
/// except `::` and `::1`, which are addresses of their own) as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let compatible = v6.segments()[..6] == [0; 6];
            if compatible && !v6.is_unspecified() && !v6.is_loopback() {
                let [.., hi, lo] = v6.segments();
                return IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
            }
            IpAddr::V6(v6)
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Parses one registry CSV (RFC 4180: quoted fields may hold commas, doubled quotes and line
/// breaks). The "Address Block" column may carry footnote marks (`192.0.0.0/24 [2]`) and
/// several blocks separated by commas.
fn parse_registry(csv: &str) -> Result<Vec<Row>, String> {
    let mut records = parse_csv(csv).into_iter();
    let header = records.next().ok_or("empty registry")?;
    if header.first().map(String::as_str) != Some("Address Block")
        || header.get(1).map(String::as_str) != Some("Name")
    {
        return Err(format!("unexpected registry header {header:?}"));
    }
    records
        .filter(|r| r.iter().any(|f| !f.trim().is_empty()))
        .map(|record| {
            let [block, name, ..] = record.as_slice() else {
                return Err(format!("short registry row {record:?}"));
            };
            let blocks = block
                .split(',')
                .map(|b| {
                    let b = strip_footnotes(b);
                    b.parse::<IpNet>()
                        .map_err(|_| format!("not an address block: {b:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Row {
                blocks,
                name: name.clone(),
            })
        })
        .collect()
}

/// `2002::/16 [3]` → `2002::/16`.
fn strip_footnotes(field: &str) -> &str {
    field.split('[').next().unwrap_or("").trim()
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// The first and last address of a block (for the tests, and for anyone checking a row).
#[must_use]
pub fn bounds(block: &IpNet) -> (IpAddr, IpAddr) {
    match block {
        IpNet::V4(n) => (IpAddr::V4(n.network()), IpAddr::V4(n.broadcast())),
        IpNet::V6(n) => (IpAddr::V6(n.network()), IpAddr::V6(n.broadcast())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn both_registries_parse_completely() {
        assert!(REGISTRY.is_some());
        let v4 = parse_registry(IPV4_CSV).unwrap();
        let v6 = parse_registry(IPV6_CSV).unwrap();
        // Every non-header line that starts a row is a row (the multi-line quoted cells
        // continue a row, they do not start one).
        let starts = |csv: &str| {
            csv.lines()
                .skip(1)
                .filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '"'))
                .count()
        };
        assert_eq!(v4.len(), starts(IPV4_CSV));
        assert_eq!(v6.len(), starts(IPV6_CSV));
        assert_eq!(v4.len(), 25);
        assert_eq!(v6.len(), 25);
        let nat64 = v4
            .iter()
            .find(|r| r.name == "NAT64/DNS64 Discovery")
            .unwrap();
        assert_eq!(nat64.blocks.len(), 2);
        assert!(v6.iter().any(|r| r.name == "TEREDO"));
        assert!(v4
            .iter()
            .all(|r| r.blocks.iter().all(|b| matches!(b, IpNet::V4(_)))));
        assert!(v6
            .iter()
            .all(|r| r.blocks.iter().all(|b| matches!(b, IpNet::V6(_)))));
    }

    /// Every address block of every row is refused: its first and last address, and (IPv4)
    /// the same addresses mapped into IPv6.
    #[test]
    fn every_registry_entry_is_refused() {
        let mut checked = 0;
        for row in registry() {
            // The IPv4-mapped row is judged by the IPv4 address each member carries
            // (`::ffff:8.8.8.8` is allowed; see the next test).
            if row.name == "IPv4-mapped Address" {
                continue;
            }
            for block in &row.blocks {
                let (first, last) = bounds(block);
                for a in [first, last] {
                    assert!(is_special(a), "{a} ({}) must be refused", row.name);
                    if let IpAddr::V4(v4) = a {
                        assert!(is_special(IpAddr::V6(v4.to_ipv6_mapped())), "mapped {a}");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 96, "{checked}");
    }

    #[test]
    fn teredo_documentation_and_the_rest_are_refused() {
        for a in [
            "2001::1",                              // Teredo
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo with an embedded server
            "2001:db8::1",                          // documentation
            "3fff::1",                              // documentation (RFC 9637)
            "2002:808:808::1",                      // 6to4, even of a public IPv4 address
            "64:ff9b::808:808",                     // NAT64
            "64:ff9b:1::7f00:1",                    // local-use NAT64
            "100::1",                               // discard-only
            "5f00::1",                              // SRv6 SIDs
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1", // site-local (deprecated, outside 2000::/3)
            "ff02::1", // multicast
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1", // IPv4-compatible
            "::10.0.0.1",
            "4000::1", // reserved by the IETF
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.9",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_special(ip(a)), "{a} must be refused");
        }
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888", // outside 2001::/23
            "::ffff:8.8.8.8",
            "::8.8.8.8",
        ] {
            assert!(!is_special(ip(a)), "{a} must be allowed");
        }
    }

    #[test]
    fn loopback_in_every_spelling() {
        for a in ["127.0.0.1", "127.255.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip(a)), "{a}");
        }
        for a in ["10.0.0.1", "::", "0.0.0.0", "::ffff:10.0.0.1", "::2"] {
            assert!(!is_loopback(ip(a)), "{a}");
        }
    }

    #[test]
    fn csv_quirks() {
        let rows = parse_csv("a,b\n\"x, y\",\"he said \"\"hi\"\"\nnext\"\nlast,1");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["x, y", "he said \"hi\"\nnext"]);
        assert_eq!(rows[2], vec!["last", "1"]);
        assert!(parse_registry("Wrong,Header\n1.2.3.0/24,x\n").is_err());
        assert!(parse_registry("Address Block,Name\nnot-a-block,x\n").is_err());
    }
}
