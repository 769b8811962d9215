//! How a browser proves it holds the engine's token.
//!
//! A browser cannot attach `Authorization: Bearer` to a page it navigates to, or to the
//! scripts that page loads. So the dashboard takes the token once, in the address
//! (`/ui?token=…`), checks it in constant time, and answers with a redirect to `/ui` that
//! sets a cookie and drops the token from the address bar (and so from history and
//! bookmarks). From then on, the cookie authorizes everything under `/ui`: the page, its
//! assets and its JSON (`/ui/api/…`).
//!
//! The cookie is `HttpOnly` (scripts cannot read it), `SameSite=Strict` (other sites
//! cannot make the browser send it), scoped to `Path=/ui`, and lasts for the browser
//! session. It holds a digest of the token, not the token itself: it opens the read-only
//! dashboard and nothing else, since the rest of the API accepts only the bearer token.
//! `Authorization: Bearer <token>` works on every `/ui` route too, for scripts and tests.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "rukong_ui";

/// The dashboard's view of the engine's token.
#[derive(Clone)]
pub struct UiAuth {
    /// `None` when the engine runs insecure: everything is open.
    token: Option<String>,
    /// The cookie value that proves the token: a digest of it.
    cookie: Option<String>,
}

impl std::fmt::Debug for UiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiAuth")
            .field("open", &self.token.is_none())
            .finish()
    }
}

/// What a request presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The engine runs insecure, or the request carries the bearer token or the cookie.
    Allowed,
    /// Nothing was presented.
    Missing,
    /// Something was presented, and it was wrong.
    Wrong,
}

impl UiAuth {
    pub fn new(token: Option<String>) -> Self {
        let cookie = token.as_deref().map(cookie_value);
        UiAuth { token, cookie }
    }

    /// Whether the engine runs without a token.
    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    /// Whether `candidate` is the token (constant time in its contents).
    pub fn token_matches(&self, candidate: &str) -> bool {
        match &self.token {
            None => true,
            Some(want) => crate::http::constant_time_eq(candidate.as_bytes(), want.as_bytes()),
        }
    }

    /// Checks the bearer token and the dashboard cookie of a request.
    pub fn check(&self, headers: &HeaderMap) -> Verdict {
        let (Some(_), Some(cookie)) = (&self.token, &self.cookie) else {
            return Verdict::Allowed;
        };
        let mut presented = false;
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "));
        for t in bearer {
            presented = true;
            if self.token_matches(t) {
                return Verdict::Allowed;
            }
        }
        for v in cookie_values(headers) {
            presented = true;
            if crate::http::constant_time_eq(v.as_bytes(), cookie.as_bytes()) {
                return Verdict::Allowed;
            }
        }
        if presented {
            Verdict::Wrong
        } else {
            Verdict::Missing
        }
    }

    /// The `Set-Cookie` header value that authorizes this browser (none when open).
    pub fn set_cookie(&self) -> Option<String> {
        self.cookie
            .as_ref()
            .map(|c| format!("{COOKIE}={c}; Path=/ui; HttpOnly; SameSite=Strict"))
    }
}

/// The cookie value for `token`: `v1-` and the hex SHA-256 of a fixed label and the token.
fn cookie_value(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"rukong-ui-cookie/v1\0");
    h.update(token.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1-");
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Every value of the dashboard cookie in the request's `Cookie` headers.
fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value.trim())
        })
}
