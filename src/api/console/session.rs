//! The console's sessions: a login (access key id and secret, checked against
//! `[[api.credentials]]` by the API's verifier) gets a random token, handed to the browser in
//! an HttpOnly, SameSite=Strict cookie and kept here, hashed, with its expiry.
//!
//! Invariants: the table never holds more than [`MAX_SESSIONS`] entries (a new login evicts
//! the session closest to its expiry); a token is never stored, only its SHA-256, so looking
//! one up leaks nothing through timing; an expired session is never accepted (and is dropped
//! when seen). The secret of a login is never kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::HeaderValue;
use sha2::{Digest, Sha256};

/// The cookie that carries a session token.
pub const COOKIE: &str = "kinedge_session";
/// How long a session lasts after its login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 64;
/// The header the console sends with every request that changes something: a cookie alone
/// authorises only reads, so that another origin of the same site cannot make the browser
/// create or delete anything (a custom header needs a CORS preflight, which only the
/// configured origins pass).
pub const CONSOLE_HEADER: &str = "x-kinedge-console";

struct Session {
    access_key_id: String,
    expires: Instant,
}

/// The server-side session table.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Opens a session for `access_key_id` and returns its token (64 hex digits).
    pub fn open(&self, access_key_id: &str) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut table = self.lock();
        table.retain(|_, s| s.expires > now);
        while table.len() >= MAX_SESSIONS {
            let Some(oldest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else {
                break;
            };
            table.remove(&oldest);
        }
        table.insert(
            digest(&token),
            Session {
                access_key_id: access_key_id.to_string(),
                expires: now + SESSION_TTL,
            },
        );
        token
    }

    /// The access key id of the live session `token` belongs to.
    pub fn check(&self, token: &str) -> Option<String> {
        let key = digest(token);
        let mut table = self.lock();
        match table.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.access_key_id.clone()),
            Some(_) => {
                table.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`, if any.
    pub fn close(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// Sessions held now (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The access key id of the session a request carries, when its cookie names a live one
    /// and, for a method that changes something, it also carries [`CONSOLE_HEADER`].
    pub fn of_request(&self, parts: &Parts) -> Option<String> {
        let safe = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
        if !safe && !parts.headers.contains_key(CONSOLE_HEADER) {
            return None;
        }
        self.check(token_of(parts)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a consistent map: every change is one call.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session token in a request's `Cookie` headers.
pub fn token_of(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The `Set-Cookie` value that hands `token` to the browser; `secure` (the listener speaks
/// TLS) keeps the browser from ever sending it over plain HTTP.
pub fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    let value = format!(
        "{COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "kinedge_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
        )
    } else {
        HeaderValue::from_static("kinedge_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_over_tls_are_secure() {
        for secure in [false, true] {
            let set = set_cookie("abc", secure);
            let clear = clear_cookie(secure);
            for value in [set.to_str().unwrap(), clear.to_str().unwrap()] {
                assert!(value.contains("HttpOnly; SameSite=Strict"), "{value}");
                assert_eq!(value.ends_with("; Secure"), secure, "{value}");
            }
        }
    }

    fn parts(method: &str, cookie: Option<&str>, console: bool) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/status");
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        if console {
            b = b.header(CONSOLE_HEADER, "1");
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_session_authorises_reads_and_with_the_header_writes() {
        let sessions = Sessions::default();
        let token = sessions.open("AKIA1");
        let cookie = format!("a=b; {COOKIE}={token}");
        assert_eq!(
            sessions.of_request(&parts("GET", Some(&cookie), false)),
            Some("AKIA1".into())
        );
        assert_eq!(
            sessions.of_request(&parts("POST", Some(&cookie), false)),
            None
        );
        assert_eq!(
            sessions.of_request(&parts("POST", Some(&cookie), true)),
            Some("AKIA1".into())
        );
        assert_eq!(sessions.of_request(&parts("GET", None, false)), None);
        let wrong = format!("{COOKIE}=00{}", &token[2..]);
        assert_eq!(
            sessions.of_request(&parts("GET", Some(&wrong), false)),
            None
        );
        sessions.close(&token);
        assert_eq!(
            sessions.of_request(&parts("GET", Some(&cookie), false)),
            None
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open("k");
        for _ in 0..MAX_SESSIONS * 2 {
            sessions.open("k");
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.check(&first), None);
    }
}
