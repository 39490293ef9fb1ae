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
}

impl Viewer {
    /// The viewer's user id, if signed in.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User(u) => Some(u.id),
        }
    }
}
