//! The web console: one page and its script and stylesheet, embedded in the binary (no
//! CDN, no network at run time, no front-end build step), served at `/` and
//! `/console/*` without the bearer token (they hold no data: every figure the page shows
//! comes from the token-protected API, called with the token the user types in).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../assets/console/index.html");
const APP_JS: &str = include_str!("../assets/console/app.js");
const APP_CSS: &str = include_str!("../assets/console/app.css");

/// Bytes of the embedded console (HTML + JS + CSS), for the record.
pub const BUNDLE_BYTES: usize = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len();
// The console stays small: a page, not an application bundle.
const _: () = assert!(
    BUNDLE_BYTES < 64 * 1024,
    "the console bundle grew past 64 KiB"
);

/// Scripts and styles only from the daemon itself, images also from blob: URLs (the
/// page fetches frames with the token and shows them as blobs); nothing inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The console's routes (state-free, merged into the API router).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        // Everything the page references is served by `router`; nothing off-site.
        for needle in ["src=\"/console/app.js\"", "href=\"/console/app.css\""] {
            assert!(INDEX_HTML.contains(needle), "{needle}");
        }
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("<script>"), "no inline script (CSP)");
        }
        // The token is only ever sent as a header.
        assert!(APP_JS.contains("headers.set('Authorization', 'Bearer ' + t)"));
        assert!(!APP_JS.contains("token=") && !APP_JS.contains("access_token"));
    }
}
