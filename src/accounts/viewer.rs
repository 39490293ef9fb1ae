//! Who is asking: decoded once per request and put in the request data.

use uuid::Uuid;

use super::Role;

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
            .is_some_and(|u| u.id == user || u.role == super::Role::Admin)
    }

    /// The viewer's user id, if signed in.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User(u) => Some(u.id),
        }
    }
}
