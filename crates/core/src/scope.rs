//! Scope values (RFC 6749 §3.3): space-delimited, case-sensitive scope tokens.

use std::collections::BTreeSet;

/// A set of scope tokens, kept sorted so that equal sets print equally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A token with a character outside `%x21 / %x23-5B / %x5D-7E`.
    #[error("scope token contains a character not allowed by RFC 6749 §3.3")]
    Charset,
    /// Too long.
    #[error("scope is longer than {0} characters")]
    TooLong(usize),
}

/// The longest scope string accepted.
pub const MAX_SCOPE_LEN: usize = 2048;

/// A scope string as an ECMA-262 pattern: RFC 6749 §3.3 tokens (`%x21 / %x23-5B / %x5D-7E`)
/// separated by spaces; with `maxLength` [`MAX_SCOPE_LEN`] it is what [`Scopes::parse`]
/// accepts (a property test holds them equal).
pub const SCOPE_PATTERN: &str = "^[\\u0021\\u0023-\\u005b\\u005d-\\u007e ]*$";

fn valid_token_byte(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

impl Scopes {
    /// Parses a space-delimited scope string. Repeated spaces and duplicates are tolerated
    /// (the set absorbs them); an empty string is the empty set.
    ///
    /// # Errors
    /// When a token has a forbidden character or the string is too long.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong(MAX_SCOPE_LEN));
        }
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(valid_token_byte) {
                return Err(ScopeError::Charset);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Whether every token of `self` is in `allowed`.
    #[must_use]
    pub fn is_subset(&self, allowed: &Scopes) -> bool {
        self.0.is_subset(&allowed.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the set holds `token`.
    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// The tokens in both sets.
    #[must_use]
    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    /// Adds every token of `other`.
    pub fn extend(&mut self, other: &Scopes) {
        self.0.extend(other.0.iter().cloned());
    }

    /// The tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The canonical space-delimited form.
    #[must_use]
    pub fn to_scope_string(&self) -> String {
        self.0
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let s = Scopes::parse("write  read read").unwrap();
        assert_eq!(s.to_scope_string(), "read write");
        assert!(Scopes::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "a\tb"] {
            assert_eq!(Scopes::parse(bad), Err(ScopeError::Charset), "{bad}");
        }
        assert!(Scopes::parse(&"a".repeat(MAX_SCOPE_LEN + 1)).is_err());
    }

    #[test]
    fn subset() {
        let allowed = Scopes::parse("a b c").unwrap();
        assert!(Scopes::parse("a c").unwrap().is_subset(&allowed));
        assert!(!Scopes::parse("a d").unwrap().is_subset(&allowed));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
        const TOKEN: &str = "[!#-\\[\\]-~]{1,12}";

        proptest! {
            #[test]
            fn canonical_form_is_a_fixed_point(tokens in prop::collection::vec(TOKEN, 0..8), spaces in 1usize..4) {
                let text = tokens.join(&" ".repeat(spaces));
                let parsed = Scopes::parse(&text).unwrap();
                let canonical = parsed.to_scope_string();
                prop_assert_eq!(&Scopes::parse(&canonical).unwrap(), &parsed);
                prop_assert_eq!(Scopes::parse(&canonical).unwrap().to_scope_string(), canonical);
                for t in &tokens {
                    prop_assert!(parsed.contains(t));
                }
                prop_assert_eq!(parsed.iter().count(), tokens.iter().collect::<std::collections::BTreeSet<_>>().len());
            }

            #[test]
            fn order_and_repetition_do_not_matter(mut tokens in prop::collection::vec(TOKEN, 1..8)) {
                let a = Scopes::parse(&tokens.join(" ")).unwrap();
                tokens.reverse();
                tokens.extend(tokens.clone());
                prop_assert_eq!(Scopes::parse(&tokens.join(" ")).unwrap(), a);
            }

            #[test]
            fn subsets_agree_with_token_membership(a in prop::collection::vec(TOKEN, 0..6), b in prop::collection::vec(TOKEN, 0..6)) {
                let (sa, sb) = (Scopes::parse(&a.join(" ")).unwrap(), Scopes::parse(&b.join(" ")).unwrap());
                prop_assert_eq!(sa.is_subset(&sb), a.iter().all(|t| sb.contains(t)));
                let union = Scopes::parse(&format!("{} {}", a.join(" "), b.join(" "))).unwrap();
                prop_assert!(sa.is_subset(&union) && sb.is_subset(&union));
            }

            #[test]
            fn any_text_either_parses_or_names_why(s in "\\PC{0,64}") {
                let valid = s.split(' ').filter(|t| !t.is_empty()).all(|t| t.bytes().all(valid_token_byte));
                match Scopes::parse(&s) {
                    Ok(_) => prop_assert!(valid),
                    Err(e) => prop_assert_eq!(e, ScopeError::Charset),
                }
            }

            #[test]
            fn length_limit_holds(n in 0usize..5000) {
                let s = "a".repeat(n);
                prop_assert_eq!(Scopes::parse(&s).is_ok(), n <= MAX_SCOPE_LEN);
            }
        }
    }
}

#[cfg(test)]
mod schema_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn scope_pattern_is_the_parser(s in "\\PC{0,20}|[ -~]{0,30}|[a-z ]{2040,2050}") {
            let pattern = regex::Regex::new(SCOPE_PATTERN).unwrap();
            let fits = pattern.is_match(&s) && s.chars().count() <= MAX_SCOPE_LEN;
            prop_assert_eq!(fits, Scopes::parse(&s).is_ok(), "{:?}", s);
        }
    }
}
