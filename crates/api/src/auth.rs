//! The bearer token every route but `/healthz`, `/readyz` and the UI's
//! static files requires. It comes from an environment variable or a file,
//! is compared in constant time, and is never printed: its `Debug` is
//! redacted and a refusal says only "unauthorized".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shorter tokens are refused at start: they are guessable, and a typo such
/// as an empty file should not become the secret.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Clone)]
pub struct ApiToken {
    /// SHA-256 of the token: comparing digests takes the same time whatever
    /// the length of the presented token.
    digest: Arc<[u8; 32]>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("api.token_file {path}: cannot read it: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("api.token_env: the environment variable {0} is not set or empty")]
    Unset(String),
    #[error("{0}: the token is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort(String),
}

impl ApiToken {
    pub fn new(token: &str) -> Result<Self, TokenError> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort("api token".into()));
        }
        Ok(ApiToken { digest: Arc::new(Sha256::digest(token.as_bytes()).into()) })
    }

    /// From `file` if given, else from the environment variable `env`.
    /// Surrounding whitespace (a trailing newline) is not part of the token.
    pub fn load(env: &str, file: Option<&Path>) -> Result<Self, TokenError> {
        let (token, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| TokenError::File { path: path.to_owned(), source })?;
                (text, format!("api.token_file {}", path.display()))
            }
            None => {
                let value = std::env::var(env).unwrap_or_default();
                if value.trim().is_empty() {
                    return Err(TokenError::Unset(env.to_owned()));
                }
                (value, format!("api.token_env {env}"))
            }
        };
        ApiToken::new(&token).map_err(|_| TokenError::TooShort(origin))
    }

    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&*self.digest).into()
    }
}

/// The bearer token of an `Authorization` header, if well formed.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: lets a request through only with the right token. The
/// refusal is the same whether the header is missing, malformed or wrong.
pub async fn require_token(
    State(token): State<ApiToken>,
    request: Request,
    next: Next,
) -> Response {
    if bearer(&request).is_some_and(|presented| token.matches(presented)) {
        return next.run(request).await;
    }
    let body = crate::model::ErrorBody { error: "unauthorized".into() };
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly_and_never_print() {
        let token = ApiToken::new("  correct-horse-battery\n").unwrap();
        assert!(token.matches("correct-horse-battery"));
        assert!(!token.matches("correct-horse-batter"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
        assert!(matches!(ApiToken::new("short"), Err(TokenError::TooShort(_))));
    }

    #[test]
    fn a_token_file_is_read_and_its_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-a-file-0123456789\n").unwrap();
        assert!(ApiToken::load("UNUSED", Some(&path)).unwrap().matches("from-a-file-0123456789"));
        let err = ApiToken::load("UNUSED", Some(&dir.path().join("missing"))).unwrap_err();
        assert!(err.to_string().starts_with("api.token_file "), "{err}");
        std::fs::write(&path, "tiny").unwrap();
        let err = ApiToken::load("UNUSED", Some(&path)).unwrap_err().to_string();
        assert!(err.contains("api.token_file") && !err.contains("tiny"), "{err}");
        let err = ApiToken::load("STEWARD_TEST_SURELY_UNSET_VARIABLE", None).unwrap_err();
        assert!(err.to_string().contains("STEWARD_TEST_SURELY_UNSET_VARIABLE"), "{err}");
    }
}
