//! Enumerations stored as `text` with a `CHECK` constraint, exposed as GraphQL enums.
//! [`db_enum!`] keeps the database value, the Rust variant and the GraphQL name in one place.

/// Declares an enum that maps to a `text` column (database values in snake_case or as given)
/// and to a GraphQL enum (SCREAMING_SNAKE_CASE names).
#[macro_export]
macro_rules! db_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $db:literal ),+ $(,)? }
    ) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            async_graphql::Enum, diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $(#[$meta])*
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $db),+ }
            }

            /// Parses a database value.
            pub fn from_db(value: &str) -> Option<Self> {
                match value { $($db => Some($name::$variant),)+ _ => None }
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        /// Writes the database value.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        /// Reads the database value (as in JSON that PostgreSQL built from a row).
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::from_db(&raw).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} value `{raw}`", stringify!($name)))
                })
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let raw = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(value)?;
                Self::from_db(&raw)
                    .ok_or_else(|| format!("unknown {} value `{raw}`", stringify!($name)).into())
            }
        }
    };
}
