//! The playground: GraphiQL 5 served by the binary from a production bundle kept in
//! `playground/` (`vendor.sh` builds it with esbuild from the versions pinned in
//! `playground/build/package-lock.json`; `SOURCES` records them and each file's SHA-256), so
//! it works offline and under a strict Content-Security-Policy: nothing is loaded from
//! another host and no script is inline.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Every file the page loads: (name under `/graphiql/`, content type, bytes).
const ASSETS: [(&str, &str, &[u8]); 8] = [
    (
        "graphiql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/graphiql.js"),
    ),
    (
        "graphiql.css",
        "text/css; charset=utf-8",
        include_bytes!("playground/graphiql.css"),
    ),
    (
        "codicon.ttf",
        "font/ttf",
        include_bytes!("playground/codicon.ttf"),
    ),
    (
        "editor.worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/editor.worker.js"),
    ),
    (
        "json.worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/json.worker.js"),
    ),
    (
        "graphql.worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/graphql.worker.js"),
    ),
    (
        "playground.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/playground.js"),
    ),
    (
        "playground.css",
        "text/css; charset=utf-8",
        include_bytes!("playground/playground.css"),
    ),
];

const PAGE: &str = include_str!("playground/index.html");

/// Only this origin's scripts, workers, styles and API; GraphiQL's editor (Monaco) sets
/// inline styles and some icons are data URLs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     worker-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The page itself (asked for with `Accept: text/html` and no query).
pub fn page() -> Response {
    let mut response = (StatusCode::OK, PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /graphiql/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (StatusCode::OK, *bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The names carry no version, so a browser revalidates after a day.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The committed third-party files are exactly what `vendor.sh` recorded.
    #[test]
    fn vendored_assets_match_their_recorded_sources() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/playground");
        let sources = std::fs::read_to_string(dir.join("SOURCES")).expect("SOURCES");
        let mut checked = 0;
        for line in sources
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [file, sha256] = fields[..] else {
                panic!("malformed SOURCES line: {line}");
            };
            let bytes = std::fs::read(dir.join(file)).expect(file);
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(digest, sha256, "{file} differs from what vendor.sh built");
            assert!(
                super::ASSETS.iter().any(|(name, _, _)| *name == file),
                "{file} is recorded but not served"
            );
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    /// A production build: React's development build checks and warns on every render,
    /// and nothing is fetched from a CDN at run time.
    #[test]
    fn the_bundle_is_a_production_build_that_loads_nothing_from_elsewhere() {
        let bundle = String::from_utf8_lossy(super::ASSETS[0].2);
        assert!(!bundle.contains("react-dom.development"));
        assert!(!bundle.contains("Warning: Each child in a list should have a unique"));
        for (name, _, bytes) in super::ASSETS {
            let text = String::from_utf8_lossy(bytes);
            for cdn in ["esm.sh/", "unpkg.com/", "cdn.jsdelivr.net/"] {
                assert!(!text.contains(cdn), "{name} names {cdn}");
            }
        }
    }
}
