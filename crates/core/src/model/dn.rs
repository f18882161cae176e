//! RFC 4514 distinguished names: parsing the string a client registers as
//! `tls_client_auth_subject_dn` and comparing it with a certificate's subject (RFC 8705 §2.1.2).
//!
//! Names are compared structurally, never as rendered strings: the same RDN sequence, each
//! RDN with the same attribute types (keywords or dotted OIDs, case-insensitive), and equal
//! values after RFC 4514 unescaping. Values are compared exactly (case-sensitive): an operator
//! registers the subject its CA issues. `#`-hex values (RFC 4514 §2.4) are compared with the
//! certificate's encoded value.

use std::fmt;

use x509_parser::asn1_rs::{Any, FromDer as _, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Attribute-type keywords accepted in a DN string, with their OIDs: RFC 4514 §3's table plus
/// the names OpenSSL and Java print for other common subject attributes.
const KEYWORDS: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("COMMONNAME", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SURNAME", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("COUNTRYNAME", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("LOCALITYNAME", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STATEORPROVINCENAME", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("STREETADDRESS", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("ORGANIZATIONNAME", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("ORGANIZATIONALUNITNAME", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("BUSINESSCATEGORY", "2.5.4.15"),
    ("POSTALCODE", "2.5.4.17"),
    ("GN", "2.5.4.42"),
    ("GIVENNAME", "2.5.4.42"),
    ("INITIALS", "2.5.4.43"),
    ("GENERATIONQUALIFIER", "2.5.4.44"),
    ("DNQUALIFIER", "2.5.4.46"),
    ("PSEUDONYM", "2.5.4.65"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
];

/// Longest DN string accepted.
const MAX_LEN: usize = 4096;

/// Why a DN string does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(String);

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DnError {}

fn err(msg: impl Into<String>) -> DnError {
    DnError(msg.into())
}

/// An attribute value as written: a string (unescaped) or the BER bytes of a `#`-hex value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Ber(Vec<u8>),
}

/// One `type=value` of an RDN; `oid` is dotted-decimal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ava {
    oid: String,
    value: Value,
}

/// A parsed RFC 4514 DN. RDNs are kept in ASN.1 order (the reverse of the string's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Vec<Ava>>,
}

impl DistinguishedName {
    /// Parses an RFC 4514 string. Also accepted, as RFC 4514 §3 allows: spaces around the `,`,
    /// `+` and `=` separators (an unescaped leading or trailing space cannot be part of a value).
    ///
    /// # Errors
    /// When the string is empty, too long, or not RFC 4514.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        if s.len() > MAX_LEN {
            return Err(err(format!("is longer than {MAX_LEN} bytes")));
        }
        if s.trim().is_empty() {
            return Err(err("is empty"));
        }
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let mut rdns = Vec::new();
        loop {
            let mut rdn = vec![p.ava()?];
            loop {
                p.spaces();
                match p.peek() {
                    Some(b'+') => {
                        p.i += 1;
                        rdn.push(p.ava()?);
                    }
                    Some(b',') => {
                        p.i += 1;
                        p.spaces();
                        if p.peek().is_none() {
                            return Err(err("ends with `,`"));
                        }
                        break;
                    }
                    None => break,
                    Some(c) => {
                        return Err(err(format!(
                            "unexpected `{}` at byte {}",
                            char::from(c),
                            p.i
                        )))
                    }
                }
            }
            rdns.push(rdn);
            if p.peek().is_none() {
                break;
            }
        }
        rdns.reverse();
        Ok(Self { rdns })
    }

    /// Whether a certificate's subject is this name.
    #[must_use]
    pub fn matches(&self, name: &X509Name<'_>) -> bool {
        let theirs: Vec<_> = name.iter_rdn().collect();
        theirs.len() == self.rdns.len()
            && self
                .rdns
                .iter()
                .zip(theirs)
                .all(|(ours, theirs)| rdn_matches(ours, &theirs.iter().collect::<Vec<_>>()))
    }
}

/// The AVAs of an RDN form a set: each of ours must match a distinct one of theirs.
fn rdn_matches(ours: &[Ava], theirs: &[&AttributeTypeAndValue<'_>]) -> bool {
    if ours.len() != theirs.len() {
        return false;
    }
    let mut used = vec![false; theirs.len()];
    ours.iter().all(|ava| {
        let found = theirs
            .iter()
            .enumerate()
            .find(|(i, t)| !used[*i] && ava_matches(ava, t))
            .map(|(i, _)| i);
        found.is_some_and(|i| {
            used[i] = true;
            true
        })
    })
}

fn ava_matches(ours: &Ava, theirs: &AttributeTypeAndValue<'_>) -> bool {
    if theirs.attr_type().to_id_string() != ours.oid {
        return false;
    }
    let value = theirs.attr_value();
    match &ours.value {
        Value::Text(text) => string_value(value).is_some_and(|v| v == *text),
        Value::Ber(ber) => Any::from_der(ber)
            .ok()
            .filter(|(rest, _)| rest.is_empty())
            .is_some_and(|(_, any)| any.tag() == value.tag() && any.data == value.data),
    }
}

/// The text of a directory-string value; `None` for other types (only `#`-hex matches those).
fn string_value(any: &Any<'_>) -> Option<String> {
    match any.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::T61String => std::str::from_utf8(any.data).ok().map(str::to_owned),
        Tag::BmpString => any.as_bmpstring().ok().map(|s| s.string()),
        Tag::UniversalString => any.as_universalstring().ok().map(|s| s.string()),
        _ => None,
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn ava(&mut self) -> Result<Ava, DnError> {
        self.spaces();
        let oid = self.attribute_type()?;
        self.spaces();
        if self.peek() != Some(b'=') {
            return Err(err(format!("expected `=` at byte {}", self.i)));
        }
        self.i += 1;
        self.spaces();
        let value = if self.peek() == Some(b'#') {
            self.i += 1;
            Value::Ber(self.hexstring()?)
        } else {
            Value::Text(self.string()?)
        };
        Ok(Ava { oid, value })
    }

    /// `descr` (a keyword) or `numericoid`, as a dotted OID.
    fn attribute_type(&mut self) -> Result<String, DnError> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        {
            self.i += 1;
        }
        let word =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| err("bad attribute type"))?;
        if word.is_empty() {
            return Err(err(format!("expected an attribute type at byte {start}")));
        }
        if word.as_bytes()[0].is_ascii_digit() {
            let arcs: Vec<&str> = word.split('.').collect();
            let good = arcs.len() >= 2
                && arcs.iter().all(|a| {
                    !a.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && (a.len() == 1 || !a.starts_with('0'))
                });
            return if good {
                Ok(word.to_owned())
            } else {
                Err(err(format!("`{word}` is not a numeric OID")))
            };
        }
        let upper = word.to_ascii_uppercase();
        KEYWORDS
            .iter()
            .find(|(k, _)| *k == upper)
            .map(|(_, oid)| (*oid).to_owned())
            .ok_or_else(|| {
                err(format!(
                    "unknown attribute type `{word}` (use its dotted OID)"
                ))
            })
    }

    fn hexstring(&mut self) -> Result<Vec<u8>, DnError> {
        let mut out = Vec::new();
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            out.push(self.hexpair()?);
        }
        if out.is_empty() {
            return Err(err(format!(
                "expected hex digits after `#` at byte {}",
                self.i
            )));
        }
        Ok(out)
    }

    fn hexpair(&mut self) -> Result<u8, DnError> {
        let pair = self
            .s
            .get(self.i..self.i + 2)
            .ok_or_else(|| err("truncated hex pair"))?;
        let text = std::str::from_utf8(pair).map_err(|_| err("bad hex pair"))?;
        let byte = u8::from_str_radix(text, 16)
            .map_err(|_| err(format!("bad hex pair at byte {}", self.i)))?;
        self.i += 2;
        Ok(byte)
    }

    /// A `string` value up to the next unescaped `,` or `+` (or the end), unescaped.
    fn string(&mut self) -> Result<String, DnError> {
        let mut out = Vec::new();
        // Length of `out` up to the last escaped or non-space byte: trailing unescaped spaces
        // are separators' padding, not value.
        let mut keep = 0;
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) if b"\\\"+,;<>= #".contains(&c) => {
                            out.push(c);
                            self.i += 1;
                        }
                        Some(c) if c.is_ascii_hexdigit() => out.push(self.hexpair()?),
                        _ => return Err(err(format!("bad escape at byte {}", self.i))),
                    }
                    keep = out.len();
                }
                b'"' | b';' | b'<' | b'>' | 0 => {
                    return Err(err(format!(
                        "`{}` must be escaped (byte {})",
                        char::from(c),
                        self.i
                    )));
                }
                _ => {
                    out.push(c);
                    self.i += 1;
                    if c != b' ' {
                        keep = out.len();
                    }
                }
            }
        }
        out.truncate(keep);
        String::from_utf8(out).map_err(|_| err("a value is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use x509_parser::x509::X509Name;

    fn cert_subject(dn: &rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn.clone();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn subject_matches(registered: &str, dn: &rcgen::DistinguishedName) -> bool {
        let der = cert_subject(dn);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        DistinguishedName::parse(registered)
            .unwrap()
            .matches(cert.subject())
    }

    fn acme() -> rcgen::DistinguishedName {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CountryName,
            rcgen::DnValue::PrintableString("US".try_into().unwrap()),
        );
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, "client-1");
        dn
    }

    #[test]
    fn matches_rfc4514_forms_of_the_same_subject() {
        let rows = [
            ("CN=client-1,O=Acme\\, Inc.,C=US", true),
            ("cn=client-1,o=Acme\\2C Inc.,c=US", true),
            ("CN = client-1 , O=Acme\\, Inc., C=US", true),
            ("2.5.4.3=client-1,2.5.4.10=Acme\\, Inc.,2.5.4.6=US", true),
            ("commonName=client-1,O=Acme\\, Inc.,C=US", true),
            ("CN=client-1,O=Acme\\, Inc.,C=DE", false),
            ("CN=Client-1,O=Acme\\, Inc.,C=US", false),
            ("C=US,O=Acme\\, Inc.,CN=client-1", false),
            ("CN=client-1,O=Acme\\, Inc.", false),
            ("CN=client-1+O=Acme\\, Inc.,C=US", false),
        ];
        let dn = acme();
        for (registered, want) in rows {
            assert_eq!(subject_matches(registered, &dn), want, "{registered}");
        }
    }

    #[test]
    fn parses_multi_valued_rdns_in_asn1_order() {
        // rcgen writes one attribute per RDN, so the set comparison is exercised through the
        // parsed structure here.
        let parsed = DistinguishedName::parse("CN=a+UID=b,O=x").unwrap();
        assert_eq!(parsed.rdns.len(), 2);
        assert_eq!(parsed.rdns[0][0].oid, "2.5.4.10");
        assert_eq!(parsed.rdns[1].len(), 2);
        assert_eq!(parsed.rdns[1][1].oid, "0.9.2342.19200300.100.1.1");
    }

    #[test]
    fn hex_values_compare_with_the_encoded_value() {
        let dn = acme();
        // PrintableString "US" is 13 02 55 53.
        assert!(subject_matches(
            "CN=client-1,O=Acme\\, Inc.,2.5.4.6=#13025553",
            &dn
        ));
        assert!(!subject_matches(
            "CN=client-1,O=Acme\\, Inc.,2.5.4.6=#0C025553",
            &dn
        ));
    }

    #[test]
    fn unescapes_utf8_hex_pairs() {
        let parsed = DistinguishedName::parse("CN=caf\\C3\\A9").unwrap();
        assert_eq!(parsed.rdns[0][0].value, Value::Text("café".into()));
        let parsed = DistinguishedName::parse("CN=\\ padded\\ ").unwrap();
        assert_eq!(parsed.rdns[0][0].value, Value::Text(" padded ".into()));
    }

    #[test]
    fn refuses_malformed_strings() {
        for bad in [
            "", "   ", "CN", "CN=a,", "=a", "XX=a", "CN=a;O=b", "CN=a\"b", "CN=a\\", "CN=a\\zz",
            "CN=#", "CN=#0", "CN=\\C3", "01.2=a", "1=a", "1..2=a",
        ] {
            assert!(DistinguishedName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn x509_name_without_rdns_matches_nothing_registered() {
        let (_, empty) = X509Name::from_der(&[0x30, 0x00]).unwrap();
        assert!(!DistinguishedName::parse("CN=a").unwrap().matches(&empty));
    }
}
