//! The web UI: three static files compiled into the binary, so a user runs
//! one file. They hold no data and need no token; every datum they show
//! comes from the API, with the token the user types in.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

/// Static files must not be framed by other sites or sniffed as another
/// type; scripts and styles come only from here.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", INDEX) }))
        .route("/ui/app.js", get(|| async { page("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { page("text/css; charset=utf-8", STYLE) }))
}
