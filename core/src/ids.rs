//! Typed identifiers: UUIDv7 newtypes so a key id can never be passed where an org id is meant.
//!
//! All three serialise as the canonical hyphenated UUID string. [`KeyId`] also has a fixed-width
//! base62 form, used inside API key tokens (see [`crate::token`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Defines a UUIDv7 newtype with the conversions every id shares.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (for example one read from the database).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Unwraps the underlying UUID.
            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            /// The canonical hyphenated form, e.g. `0190f1a8-7c1e-7d2a-9b3c-4d5e6f708192`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            /// Parses any textual UUID form `uuid` accepts (hyphenated, simple, braced, urn).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identifies an API key. Public: it appears in the token and in the UI.
    KeyId
);
uuid_id!(
    /// Identifies an organization.
    OrgId
);
uuid_id!(
    /// Identifies an admin user of an organization.
    AdminId
);

/// Length of [`KeyId::to_base62`]: enough base62 digits for any `u128`.
pub const KEY_ID_BASE62_LEN: usize = 22;

impl KeyId {
    /// The id as a base62 number (alphabet `0-9A-Za-z`), left-padded with `'0'` to exactly
    /// [`KEY_ID_BASE62_LEN`] characters. This is the `id` part of an API key token.
    pub fn to_base62(&self) -> String {
        format!(
            "{:0>width$}",
            base62::encode_fmt(self.0.as_u128()),
            width = KEY_ID_BASE62_LEN
        )
    }

    /// Parses the output of [`KeyId::to_base62`]: exactly 22 base62 characters whose value fits
    /// in a `u128`. Does not allocate.
    pub fn from_base62(s: &str) -> Option<KeyId> {
        if s.len() != KEY_ID_BASE62_LEN {
            return None;
        }
        // `decode` rejects any byte outside the alphabet and values above u128::MAX.
        base62::decode(s).ok().map(|n| KeyId(Uuid::from_u128(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "openapi")]
    #[test]
    fn openapi_schema_is_a_uuid_string() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(KeyId::schema()).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["format"], "uuid");
    }

    #[test]
    fn new_ids_are_v7_and_ordered() {
        let a = OrgId::new();
        let b = OrgId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a <= b);
    }

    #[test]
    fn display_and_from_str_round_trip() {
        let id = AdminId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<AdminId>().unwrap(), id);
        assert!("not-a-uuid".parse::<AdminId>().is_err());
    }

    #[test]
    fn serde_is_transparent() {
        let id = KeyId::from_uuid(Uuid::from_u128(1));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00000000-0000-0000-0000-000000000001\"");
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
    }

    #[test]
    fn base62_is_fixed_width_and_round_trips() {
        for n in [0u128, 1, 61, 62, u64::MAX as u128, u128::MAX] {
            let id = KeyId::from_uuid(Uuid::from_u128(n));
            let text = id.to_base62();
            assert_eq!(text.len(), KEY_ID_BASE62_LEN, "{n}");
            assert_eq!(KeyId::from_base62(&text), Some(id));
        }
        assert_eq!(
            KeyId::from_uuid(Uuid::from_u128(0)).to_base62(),
            "0000000000000000000000"
        );
        let id = KeyId::new();
        assert_eq!(KeyId::from_base62(&id.to_base62()), Some(id));
    }

    #[test]
    fn base62_rejects_bad_input() {
        assert_eq!(KeyId::from_base62(""), None);
        assert_eq!(KeyId::from_base62("000000000000000000000"), None); // 21 chars
        assert_eq!(KeyId::from_base62("00000000000000000000000"), None); // 23 chars
        assert_eq!(KeyId::from_base62("000000000000000000000-"), None);
        // u128::MAX is "7n42DGM5Tflk9n8mt7Fhc7"; anything above overflows.
        assert_eq!(KeyId::from_base62("zzzzzzzzzzzzzzzzzzzzzz"), None);
        assert_eq!(KeyId::from_base62("7n42DGM5Tflk9n8mt7Fhc8"), None);
    }
}
