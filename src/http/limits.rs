//! Bounds on websocket operations: how many one socket may run at once, and how many one user
//! may run at once over all their sockets on this process.
//!
//! async-graphql runs every `subscribe` it is given, so the websocket endpoint counts the
//! operations itself from the protocol messages that start and end them: the client's
//! `subscribe`/`start` and `complete`/`stop`, and the server's `complete` and `error`.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use uuid::Uuid;

/// Operations running per user on this process.
pub struct PerUser {
    max: usize,
    running: Mutex<HashMap<Uuid, usize>>,
}

impl PerUser {
    pub fn new(max: usize) -> Self {
        PerUser {
            max,
            running: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more operation of `user`, unless they already run the most allowed.
    pub fn try_start(&self, user: Uuid) -> bool {
        let mut running = self.lock();
        let n = running.entry(user).or_default();
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    /// Counts one operation of `user` less.
    pub fn end(&self, user: Uuid) {
        let mut running = self.lock();
        if let Some(n) = running.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&user);
            }
        }
    }

    /// Operations `user` runs now.
    pub fn running(&self, user: Uuid) -> usize {
        self.lock().get(&user).copied().unwrap_or(0)
    }
}

/// What to do with a client's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the GraphQL protocol handler.
    Pass,
    /// Refuse this operation with an `error` message; the socket stays open.
    Refuse { id: String, message: String },
    /// Close the socket with this code (a protocol violation).
    Close { code: u16, reason: String },
}

/// The operations of one socket.
pub struct SocketOperations {
    per_user: Arc<PerUser>,
    max: usize,
    user: Option<Uuid>,
    running: HashSet<String>,
}

impl SocketOperations {
    pub fn new(per_user: Arc<PerUser>, max: usize) -> Self {
        SocketOperations {
            per_user,
            max,
            user: None,
            running: HashSet::new(),
        }
    }

    /// The socket's user, once `connection_init` named one.
    pub fn set_user(&mut self, user: Option<Uuid>) {
        self.user = user;
    }

    /// Looks at a message from the client.
    pub fn from_client(&mut self, text: &[u8]) -> Verdict {
        #[derive(serde::Deserialize)]
        struct Msg<'m> {
            #[serde(rename = "type", borrow)]
            ty: std::borrow::Cow<'m, str>,
            id: Option<String>,
        }
        let Ok(msg) = serde_json::from_slice::<Msg>(text) else {
            return Verdict::Pass; // the protocol handler answers malformed messages
        };
        let Some(id) = msg.id else {
            return Verdict::Pass;
        };
        match msg.ty.as_ref() {
            "subscribe" | "start" => {
                if self.running.contains(&id) {
                    let mut reason = format!("Subscriber for {id} already exists");
                    reason.truncate(120);
                    return Verdict::Close { code: 4409, reason };
                }
                if self.running.len() >= self.max {
                    return Verdict::Refuse {
                        id,
                        message: format!(
                            "this socket already runs {} operations; complete one first",
                            self.max
                        ),
                    };
                }
                if let Some(user) = self.user
                    && !self.per_user.try_start(user)
                {
                    return Verdict::Refuse {
                        id,
                        message: "you run too many operations over websockets at once; complete some first".into(),
                    };
                }
                self.running.insert(id);
                Verdict::Pass
            }
            "complete" | "stop" => {
                self.ended(&id);
                Verdict::Pass
            }
            _ => Verdict::Pass,
        }
    }

    /// Looks at a message to the client: an operation's `complete` or `error` ends it.
    pub fn from_server(&mut self, text: &str) {
        // The hot path (`next`/`data` messages) is decided by the first bytes alone.
        if !(text.starts_with(r#"{"type":"complete""#) || text.starts_with(r#"{"type":"error""#)) {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Msg {
            id: Option<String>,
        }
        if let Ok(Msg { id: Some(id) }) = serde_json::from_str::<Msg>(text) {
            self.ended(&id);
        }
    }

    fn ended(&mut self, id: &str) {
        if self.running.remove(id)
            && let Some(user) = self.user
        {
            self.per_user.end(user);
        }
    }

    /// Operations this socket runs now.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

impl Drop for SocketOperations {
    /// A closed socket's operations end with it.
    fn drop(&mut self) {
        if let Some(user) = self.user {
            for _ in self.running.drain() {
                self.per_user.end(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"subscribe","id":"{id}","payload":{{"query":"subscription {{ a }}"}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn each_socket_and_each_user_is_bounded_and_counts_come_back() {
        let per_user = Arc::new(PerUser::new(3));
        let user = Uuid::now_v7();
        let mut a = SocketOperations::new(per_user.clone(), 2);
        a.set_user(Some(user));
        assert_eq!(a.from_client(&sub("1")), Verdict::Pass);
        assert_eq!(a.from_client(&sub("2")), Verdict::Pass);
        assert!(matches!(a.from_client(&sub("3")), Verdict::Refuse { .. }));
        assert!(matches!(
            a.from_client(&sub("1")),
            Verdict::Close { code: 4409, .. }
        ));
        let mut b = SocketOperations::new(per_user.clone(), 10);
        b.set_user(Some(user));
        assert_eq!(b.from_client(&sub("1")), Verdict::Pass);
        assert!(
            matches!(b.from_client(&sub("2")), Verdict::Refuse { .. }),
            "the user's third"
        );
        // The client completes one; the server completes another.
        a.from_client(br#"{"type":"complete","id":"1"}"#);
        a.from_server(r#"{"type":"next","id":"2","payload":{}}"#);
        assert_eq!(per_user.running(user), 3 - 1);
        a.from_server(r#"{"type":"complete","id":"2"}"#);
        assert_eq!(per_user.running(user), 1);
        // Completing twice counts once.
        a.from_server(r#"{"type":"complete","id":"2"}"#);
        assert_eq!(per_user.running(user), 1);
        drop(b);
        assert_eq!(
            per_user.running(user),
            0,
            "a closed socket gives its count back"
        );
        assert_eq!(a.running(), 0);
    }
}
