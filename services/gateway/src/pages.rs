//! The gateway's own pages, every asset embedded so nothing leaves the machine: GraphiQL at
//! `GET /graphql` (React, ReactDOM and GraphiQL from `assets/graphiql/`, fetched at pinned
//! versions by `cargo xtask vendor-graphiql`), the shop's web app at `/` (built from `web/` by
//! `cargo xtask gen` into `assets/shop/`), an index at `/dev` linking everything a developer
//! looks for, and the favicon browsers ask for on every page.

use poem::http::{StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route, get};

/// The GraphiQL page.
const GRAPHIQL_PAGE: &str = include_str!("../assets/graphiql.html");

/// Browsers may load only what the gateway serves and talk only to it. GraphiQL sets inline
/// styles and embeds its fonts as `data:` URLs.
const GRAPHIQL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The shop's page: it loads `/shop/shop.js` and `/shop/shop.css` and talks only to the gateway
/// (GraphQL over HTTP and WebSocket). No inline script or style.
const SHOP_PAGE: &str = include_str!("../assets/shop/index.html");

/// The shop may load only what the gateway serves and talk only to it.
const SHOP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `(path under /shop, content type, bytes)` of the shop's assets.
const SHOP_ASSETS: [(&str, &str, &[u8]); 2] = [
    (
        "shop.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/shop/shop.js"),
    ),
    (
        "shop.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/shop/shop.css"),
    ),
];

/// The developer index page; `{metrics}` is where the metrics link goes.
const INDEX_PAGE: &str = include_str!("../assets/index.html");

/// `(path under /graphiql, content type, bytes)` of GraphiQL's assets.
const GRAPHIQL_ASSETS: [(&str, &str, &[u8]); 5] = [
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.min.css"),
    ),
    (
        "start.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql-start.js"),
    ),
];

const FAVICON: &[u8] = include_bytes!("../assets/favicon.svg");

/// A fixed answer with `content_type`, cacheable for `max_age` seconds.
fn fixed(
    body: impl Into<poem::Body> + Clone + Send + Sync + 'static,
    content_type: &'static str,
    max_age: u32,
) -> impl Endpoint<Output = Response> {
    let cache = format!("public, max-age={max_age}");
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .status(StatusCode::OK)
            .content_type(content_type)
            .header(header::CACHE_CONTROL, cache.as_str())
            .header("x-content-type-options", "nosniff")
            .body(body.clone())
    })
}

/// One of the shop's assets, revalidated on every load (its name is fixed, its content is not)
/// and sent gzipped to a client that accepts it.
#[derive(Clone)]
struct ShopAsset {
    content_type: &'static str,
    plain: &'static [u8],
    gzipped: bytes::Bytes,
    etag: std::sync::Arc<str>,
}

impl ShopAsset {
    /// Compresses `plain` once, at start-up.
    fn new(content_type: &'static str, plain: &'static [u8]) -> Self {
        use std::hash::{Hash, Hasher};
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to memory cannot fail; an empty body would only cost the compression.
        let gzipped = encoder
            .write_all(plain)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        // Every replica runs the same build, so the same bytes have the same tag everywhere.
        let mut hasher = std::hash::DefaultHasher::new();
        plain.hash(&mut hasher);
        Self {
            content_type,
            plain,
            gzipped: bytes::Bytes::from(gzipped),
            etag: format!("\"{:016x}\"", hasher.finish()).into(),
        }
    }

    fn endpoint(self) -> impl Endpoint<Output = Response> {
        poem::endpoint::make_sync(move |request: poem::Request| {
            let header_has = |name, value: &str| {
                request
                    .headers()
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains(value))
            };
            let response = Response::builder()
                .content_type(self.content_type)
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::ETAG, &*self.etag)
                .header(header::VARY, "accept-encoding")
                .header("x-content-type-options", "nosniff");
            if header_has(header::IF_NONE_MATCH, &self.etag) {
                return response.status(StatusCode::NOT_MODIFIED).finish();
            }
            let gzip = !self.gzipped.is_empty() && header_has(header::ACCEPT_ENCODING, "gzip");
            if gzip {
                response
                    .header(header::CONTENT_ENCODING, "gzip")
                    .body(self.gzipped.clone())
            } else {
                response.body(self.plain)
            }
        })
    }
}

/// The GraphiQL page (for `GET /graphql`).
pub fn graphiql() -> impl Endpoint<Output = Response> {
    fixed(GRAPHIQL_PAGE, "text/html; charset=utf-8", 0)
        .with(
            poem::middleware::SetHeader::new().overriding("content-security-policy", GRAPHIQL_CSP),
        )
        .map_to_response()
}

/// `/` (the shop) and `/shop/*` (its assets), `/graphiql/*` (GraphiQL's assets),
/// `/favicon.ico`, `/favicon.svg` and `/dev` (the developer index, linking metrics on
/// `metrics_port` when they are served there).
pub fn routes(metrics_port: Option<u16>) -> Route {
    let mut assets = Route::new();
    for (name, content_type, bytes) in GRAPHIQL_ASSETS {
        assets = assets.at(format!("/{name}"), get(fixed(bytes, content_type, 3600)));
    }
    let mut shop_assets = Route::new();
    for (name, content_type, bytes) in SHOP_ASSETS {
        let asset = ShopAsset::new(content_type, bytes).endpoint();
        shop_assets = shop_assets.at(format!("/{name}"), get(asset));
    }
    let shop = fixed(SHOP_PAGE, "text/html; charset=utf-8", 0)
        .with(poem::middleware::SetHeader::new().overriding("content-security-policy", SHOP_CSP));
    let metrics = match metrics_port {
        None => r#"<a href="/metrics">Prometheus metrics</a>"#.to_owned(),
        Some(port) => format!("Prometheus metrics on port {port} at <code>/metrics</code>"),
    };
    let index = INDEX_PAGE.replace("{metrics}", &metrics);
    Route::new()
        .nest("/graphiql", assets)
        .nest("/shop", shop_assets)
        .at("/favicon.ico", get(fixed(FAVICON, "image/svg+xml", 86400)))
        .at("/favicon.svg", get(fixed(FAVICON, "image/svg+xml", 86400)))
        .at(
            "/dev",
            get(fixed(index, "text/html; charset=utf-8", 0).into_endpoint()),
        )
        .at("/", get(shop.map_to_response()))
}
