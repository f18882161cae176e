//! A server's rate-limit settings as the admin API stores them, and their merge patches. The
//! limiter itself (`rate_limit`) reads them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// Largest rate or burst a setting may name.
pub const MAX_SETTING: u32 = 1_000_000;

/// A server's rate-limit settings (admin API `rate_limits`); a `null` member takes the
/// process default (`--rate-limit-…`). A rate of 0 turns that limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per second per client, at each of token, introspection and revocation; 0: off.
    #[serde(default)]
    pub client_per_second: Option<u32>,
    /// Burst per client above the sustained rate.
    #[serde(default)]
    pub client_burst: Option<u32>,
    /// Requests per second per source address (IPv6: per /64), at each endpoint; 0: off.
    #[serde(default)]
    pub address_per_second: Option<u32>,
    /// Burst per source address.
    #[serde(default)]
    pub address_burst: Option<u32>,
}

/// A change to [`RateLimits`] (`PATCH`, RFC 7396 merge): a member present replaces that
/// setting, `null` resets it to the process default, an absent one keeps it.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsPatch {
    /// See [`RateLimits::client_per_second`].
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub client_per_second: Option<Option<u32>>,
    /// See [`RateLimits::client_burst`].
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub client_burst: Option<Option<u32>>,
    /// See [`RateLimits::address_per_second`].
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub address_per_second: Option<Option<u32>>,
    /// See [`RateLimits::address_burst`].
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub address_burst: Option<Option<u32>>,
}

/// Settings read from a JSON object only: serde would also build a struct from an array of
/// its members in order (`[null, 5]`), which no document describes.
#[derive(Debug)]
pub(crate) struct ObjectOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Members<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Members(std::marker::PhantomData))
            .map(Self)
    }
}

/// `rate_limits` of a new server: absent, `null` or an object.
pub(crate) fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<ObjectOnly<T>>::deserialize(d)?.map(|o| o.0))
}

/// `rate_limits` of a server patch: absent (`None`), `null` (`Some(None)`) or an object.
pub(crate) fn patch_object<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    object_or_null(d).map(Some)
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl RateLimits {
    /// Applies a merge patch.
    #[must_use]
    pub fn merged(mut self, patch: &RateLimitsPatch) -> Self {
        let set = |field: &mut Option<u32>, change: Option<Option<u32>>| {
            if let Some(v) = change {
                *field = v;
            }
        };
        set(&mut self.client_per_second, patch.client_per_second);
        set(&mut self.client_burst, patch.client_burst);
        set(&mut self.address_per_second, patch.address_per_second);
        set(&mut self.address_burst, patch.address_burst);
        self
    }

    /// Checks the ranges: rates 0 to [`MAX_SETTING`], bursts 1 to [`MAX_SETTING`].
    ///
    /// # Errors
    /// Names the first setting out of range.
    pub fn validate(&self) -> Result<(), Invalid> {
        let rows = [
            ("rate_limits.client_per_second", self.client_per_second, 0),
            ("rate_limits.client_burst", self.client_burst, 1),
            ("rate_limits.address_per_second", self.address_per_second, 0),
            ("rate_limits.address_burst", self.address_burst, 1),
        ];
        for (field, value, min) in rows {
            if let Some(v) = value {
                if !(min..=MAX_SETTING).contains(&v) {
                    return Err(Invalid::request(
                        field,
                        format!("must be between {min} and {MAX_SETTING}, or null for the default"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether every member is `null` (nothing to store).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
