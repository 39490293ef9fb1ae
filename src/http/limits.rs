//! The websocket protocols as the endpoint enforces them: bounds on operations (how many one
//! socket may run at once, and how many one user may run at once over all their sockets on
//! this process), and the rules of `graphql-transport-ws` that async-graphql leaves out.
//!
//! async-graphql runs every `subscribe` it is given, so the websocket endpoint counts the
//! operations itself from the protocol messages that start and end them: the client's
//! `subscribe`/`start` and `complete`/`stop`, and the server's `complete` and `error`.
//!
//! Over `graphql-transport-ws` ([PROTOCOL.md]) it also
//! - closes with 4401 a `subscribe` sent before `connection_init` (async-graphql: 1011), and
//!   with 4429 a second `connection_init`;
//! - sends a request error (syntax, validation, limits: the operation never ran) as an
//!   `error` message whose payload is the errors array, with no `complete` after it
//!   (async-graphql sends it as `next`, then `complete`);
//! - sends no `complete` for an operation the client completed itself (async-graphql does).
//!
//! [PROTOCOL.md]: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use uuid::Uuid;

/// Operations running per user on this process.
pub struct PerUser {
    max: usize,
    running: Mutex<HashMap<Uuid, usize>>,
    /// Operations running on every socket (signed in or not), for `/metrics`.
    all: std::sync::atomic::AtomicUsize,
}

impl PerUser {
    pub fn new(max: usize) -> Self {
        PerUser {
            max,
            running: Mutex::default(),
            all: std::sync::atomic::AtomicUsize::new(0),
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

    /// Operations running now on all the sockets of this process.
    pub fn total(&self) -> usize {
        self.all.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add_total(&self, started: bool) {
        use std::sync::atomic::Ordering;
        if started {
            self.all.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .all
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
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
    /// `graphql-transport-ws` (rather than the legacy `graphql-ws`): its rules are enforced.
    transport_ws: bool,
    /// Whether the client sent `connection_init`.
    initialised: bool,
    /// Operations that ended without the server's `complete`, which is then not sent: those
    /// the client completed, and those refused with an `error`. At most the running ones.
    silenced: HashSet<String>,
}

impl SocketOperations {
    pub fn new(per_user: Arc<PerUser>, max: usize) -> Self {
        SocketOperations {
            per_user,
            max,
            user: None,
            running: HashSet::new(),
            transport_ws: false,
            initialised: false,
            silenced: HashSet::new(),
        }
    }

    /// Enforces the rules of `graphql-transport-ws` (see the module documentation).
    pub fn transport_ws(mut self) -> Self {
        self.transport_ws = true;
        self
    }

    /// Whether the client sent `connection_init` (the endpoint closes a socket that does not
    /// in time).
    pub fn initialised(&self) -> bool {
        self.initialised
    }

    /// The ids of the running operations (shutdown completes them).
    pub fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.running.iter().cloned().collect();
        ids.sort();
        ids
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
        if msg.ty == "connection_init" {
            if self.initialised && self.transport_ws {
                return Verdict::Close {
                    code: 4429,
                    reason: "Too many initialisation requests".into(),
                };
            }
            self.initialised = true;
            return Verdict::Pass;
        }
        let Some(id) = msg.id else {
            return Verdict::Pass;
        };
        match msg.ty.as_ref() {
            "subscribe" | "start" => {
                if self.transport_ws && !self.initialised {
                    return Verdict::Close {
                        code: 4401,
                        reason: "Unauthorized".into(),
                    };
                }
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
                // A `complete` still owed for an earlier operation of this id is sent.
                self.silenced.remove(&id);
                self.running.insert(id);
                self.per_user.add_total(true);
                Verdict::Pass
            }
            "complete" | "stop" => {
                if self.ended(&id) && self.transport_ws {
                    self.silenced.insert(id);
                }
                Verdict::Pass
            }
            _ => Verdict::Pass,
        }
    }

    /// Looks at a message to the client: an operation's `complete` or `error` ends it.
    /// Returns the message to send: `None` drops it, and over `graphql-transport-ws` a request
    /// error's `next` becomes an `error`.
    pub fn from_server(&mut self, text: String) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Msg {
            id: Option<String>,
        }
        // The hot path (`next`/`data` messages with data) is decided by a scan of the text.
        if text.starts_with(r#"{"type":"complete""#) {
            if let Ok(Msg { id: Some(id) }) = serde_json::from_str::<Msg>(&text) {
                if self.silenced.remove(&id) {
                    return None;
                }
                self.ended(&id);
            }
        } else if text.starts_with(r#"{"type":"error""#) {
            if let Ok(Msg { id: Some(id) }) = serde_json::from_str::<Msg>(&text) {
                self.ended(&id);
            }
        } else if self.transport_ws
            && text.starts_with(r#"{"type":"next""#)
            && text.contains(r#""payload":{"data":null"#)
            && let Some((id, error)) = request_error(&text)
        {
            if self.ended(&id) {
                self.silenced.insert(id);
            }
            return Some(error);
        }
        Some(text)
    }

    /// Ends operation `id`; whether it was running.
    fn ended(&mut self, id: &str) -> bool {
        let was = self.running.remove(id);
        if was {
            self.per_user.add_total(false);
            if let Some(user) = self.user {
                self.per_user.end(user);
            }
        }
        was
    }

    /// Operations this socket runs now.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

/// A `next` message carrying a request error (the operation never ran), as the `error`
/// message `graphql-transport-ws` wants: `{"type":"error","id":..,"payload":[errors]}`.
fn request_error(text: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Next {
        id: String,
        payload: async_graphql::Response,
    }
    let next: Next = serde_json::from_str(text).ok()?;
    if !crate::graphql::errors::is_request_error(&next.payload) {
        return None;
    }
    let msg = serde_json::json!({ "type": "error", "id": next.id, "payload": next.payload.errors });
    Some((next.id, msg.to_string()))
}

impl Drop for SocketOperations {
    /// A closed socket's operations end with it.
    fn drop(&mut self) {
        for _ in self.running.drain() {
            self.per_user.add_total(false);
            if let Some(user) = self.user {
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
        a.from_server(r#"{"type":"next","id":"2","payload":{}}"#.into());
        assert_eq!(per_user.running(user), 3 - 1);
        a.from_server(r#"{"type":"complete","id":"2"}"#.into());
        assert_eq!(per_user.running(user), 1);
        // Completing twice counts once.
        a.from_server(r#"{"type":"complete","id":"2"}"#.into());
        assert_eq!(per_user.running(user), 1);
        drop(b);
        assert_eq!(
            per_user.running(user),
            0,
            "a closed socket gives its count back"
        );
        assert_eq!(a.running(), 0);
    }

    fn server(ops: &mut SocketOperations, text: &str) -> Option<String> {
        ops.from_server(text.to_string())
    }

    #[test]
    fn graphql_transport_ws_rules() {
        let per_user = Arc::new(PerUser::new(10));
        let init = br#"{"type":"connection_init","payload":{}}"#;
        // `subscribe` before `connection_init`: 4401.
        let mut ops = SocketOperations::new(per_user.clone(), 5).transport_ws();
        assert_eq!(
            ops.from_client(&sub("1")),
            Verdict::Close {
                code: 4401,
                reason: "Unauthorized".into()
            }
        );
        // A second `connection_init`: 4429.
        let mut ops = SocketOperations::new(per_user.clone(), 5).transport_ws();
        assert!(!ops.initialised());
        assert_eq!(ops.from_client(init), Verdict::Pass);
        assert!(ops.initialised());
        assert!(matches!(
            ops.from_client(init),
            Verdict::Close { code: 4429, .. }
        ));
        // The client completes an operation: the server's `complete` for it is not sent,
        // but one for a later operation with the same id is.
        assert_eq!(ops.from_client(&sub("1")), Verdict::Pass);
        assert_eq!(ops.running_ids(), ["1"]);
        ops.from_client(br#"{"type":"complete","id":"1"}"#);
        assert_eq!(server(&mut ops, r#"{"type":"complete","id":"1"}"#), None);
        assert_eq!(ops.from_client(&sub("1")), Verdict::Pass);
        assert!(server(&mut ops, r#"{"type":"complete","id":"1"}"#).is_some());
        // A `complete` for an id that does not run is remembered nowhere.
        ops.from_client(br#"{"type":"complete","id":"nope"}"#);
        assert!(ops.silenced.is_empty());
        // A request error is an `error` message, and no `complete` follows it.
        assert_eq!(ops.from_client(&sub("2")), Verdict::Pass);
        let next = r#"{"type":"next","id":"2","payload":{"data":null,"errors":[{"message":"Unknown field","locations":[{"line":1,"column":16}],"extensions":{"code":"BAD_USER_INPUT"}}]}}"#;
        let error: serde_json::Value =
            serde_json::from_str(&server(&mut ops, next).unwrap()).unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["id"], "2");
        assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(ops.running(), 0);
        assert_eq!(server(&mut ops, r#"{"type":"complete","id":"2"}"#), None);
        // A field error (it has a path) stays a `next`.
        assert_eq!(ops.from_client(&sub("3")), Verdict::Pass);
        let field = r#"{"type":"next","id":"3","payload":{"data":null,"errors":[{"message":"not found","path":["job"]}]}}"#;
        assert_eq!(server(&mut ops, field).as_deref(), Some(field));
        assert_eq!(ops.running(), 1);
    }

    #[test]
    fn the_legacy_protocol_keeps_its_behaviour() {
        let per_user = Arc::new(PerUser::new(10));
        let mut ops = SocketOperations::new(per_user, 5);
        assert_eq!(ops.from_client(&sub("1")), Verdict::Pass);
        ops.from_client(br#"{"type":"stop","id":"1"}"#);
        assert!(server(&mut ops, r#"{"type":"complete","id":"1"}"#).is_some());
        let next = r#"{"type":"next","id":"2","payload":{"data":null,"errors":[{"message":"x"}]}}"#;
        assert_eq!(server(&mut ops, next).as_deref(), Some(next));
    }
}
