//! Who is asking: decoded once per request and put in the request data. It sits below the
//! capabilities so the GraphQL toolkit can hand it to every resolver.

use uuid::Uuid;

use crate::db_enum;

db_enum! {
    /// What a user may do.
    pub enum Role {
        /// An ordinary user.
        User => "user",
        /// A user with a vendor profile, who may publish albums.
        Vendor => "vendor",
        /// An operator with access to admin mutations.
        Admin => "admin",
    }
}

/// The authenticated user behind a request, or nobody.
#[derive(Debug, Clone, Default)]
pub enum Viewer {
    #[default]
    Anonymous,
    User(ViewerUser),
}

/// What the access token says about its holder.
#[derive(Debug, Clone)]
pub struct ViewerUser {
    pub id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    /// When the access token expires (unix seconds).
    pub expires_at: i64,
}

impl Viewer {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&ViewerUser> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User(u) => Some(u),
        }
    }

    /// Whether the viewer is this user or an admin.
    pub fn is_self_or_admin(&self, user: Uuid) -> bool {
        self.user()
            .is_some_and(|u| u.id == user || u.role == Role::Admin)
    }

    /// The viewer's user id, if signed in.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User(u) => Some(u.id),
        }
    }
}
