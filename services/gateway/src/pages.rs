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
    // The names are fixed, not hashed, so a new build must not be served from a stale cache.
    let mut shop_assets = Route::new();
    for (name, content_type, bytes) in SHOP_ASSETS {
        shop_assets = shop_assets.at(format!("/{name}"), get(fixed(bytes, content_type, 0)));
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
