//! The operator's console at `/admin/`: static files from `console/public/` built into the binary
//! (plain ES modules and a pinned Leaflet, committed, so the build needs no npm), and
//! `/admin/config.json`, the settings the page needs. The page talks to `/v1/admin/*` with the
//! bearer token of an admin session it keeps in memory.
//!
//! Every answer under `/admin` carries a strict Content-Security-Policy (scripts and styles from
//! this origin only, nothing inline; images also from the tile host), `nosniff`, a referrer
//! policy and `frame-ancestors 'none'`. Vendored files live in versioned folders and are cached
//! for good; the console's own files are revalidated with their ETag.

use crate::service::Ctx;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, get, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The console's files, embedded at compile time (rust-embed: a directory walk, hashes for the
/// ETags). With `--no-default-features`, debug builds read them from disk instead, so that the
/// page can be changed without a rebuild.
#[derive(rust_embed::RustEmbed)]
#[folder = "console/public/"]
struct Assets;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(redirect).service(config_json).service(asset);
}

#[derive(OpenApi)]
#[openapi(paths(config_json, redirect), components(schemas(ConsoleConfig)))]
pub struct Doc;

/// What the console page needs to know of the server's settings.
#[derive(Serialize, ToSchema)]
pub struct ConsoleConfig {
    /// Map tile URL template (`{z}/{x}/{y}`, maybe `{s}`); empty: draw no tiles.
    #[schema(example = "https://tile.openstreetmap.org/{z}/{x}/{y}.png")]
    pub tile_url: String,
    /// Attribution the tile source asks for (plain text), empty when none is known.
    #[schema(example = "© OpenStreetMap contributors")]
    pub tile_attribution: String,
}

/// The Content-Security-Policy of every `/admin` answer.
pub fn content_security_policy(tile_url: &str) -> String {
    let tiles = crate::config::tile_origin(tile_url)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{tiles}; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The security headers every `/admin` answer carries.
fn secured(ctx: &Ctx, status: StatusCode) -> HttpResponseBuilder {
    let mut r = HttpResponse::build(status);
    r.insert_header((
        header::CONTENT_SECURITY_POLICY,
        content_security_policy(&ctx.settings.admin_tile_url),
    ))
    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
    // tile servers (OpenStreetMap's policy) want to know the site, not the page
    .insert_header((header::REFERRER_POLICY, "strict-origin"))
    .insert_header(("cross-origin-opener-policy", "same-origin"));
    r
}

fn not_found(ctx: &Ctx) -> HttpResponse {
    secured(ctx, StatusCode::NOT_FOUND)
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body("not found\n")
}

/// The operator console: `/admin` redirects to the page, `/admin/` (HTML; its scripts and styles
/// are files under `/admin/`, whose relative links resolve under it).
#[utoipa::path(tag = "console", operation_id = "console", responses(
    (status = 308, description = "the console page is `/admin/`", headers(("location" = String, description = "`/admin/`"))),
))]
#[get("/admin")]
pub async fn redirect(ctx: web::Data<Ctx>) -> HttpResponse {
    secured(&ctx, StatusCode::PERMANENT_REDIRECT)
        .insert_header((header::LOCATION, "/admin/"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .finish()
}

/// The console's settings: the map tile source (`HEREABOUTS_ADMIN_TILE_URL`).
#[utoipa::path(tag = "console", responses((status = 200, body = ConsoleConfig)))]
#[get("/admin/config.json")]
pub async fn config_json(ctx: web::Data<Ctx>) -> HttpResponse {
    let tile_url = ctx.settings.admin_tile_url.clone();
    let tile_attribution = if tile_url.contains("openstreetmap.org") {
        "© OpenStreetMap contributors".to_string()
    } else {
        String::new()
    };
    secured(&ctx, StatusCode::OK)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ConsoleConfig {
            tile_url,
            tile_attribution,
        })
}

/// Files of the console; `/admin/` is `index.html`.
#[get("/admin/{path:.*}")]
pub async fn asset(ctx: web::Data<Ctx>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    let path = if path.is_empty() {
        "index.html".to_string()
    } else {
        path
    };
    // names only as embedded: no way out of the folder, not even when read from disk
    if path.split('/').any(|s| s.is_empty() || s.starts_with('.')) || path.contains('\\') {
        return not_found(&ctx);
    }
    let Some(file) = Assets::get(&path) else {
        return not_found(&ctx);
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    // vendored files sit in versioned folders (vendor/leaflet-1.9.4/): a new version is a new URL
    let cache = if path.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = secured(
        &ctx,
        if matches {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        },
    );
    r.insert_header((header::CACHE_CONTROL, cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.insert_header((header::ETAG, v));
    }
    if matches {
        return r.finish();
    }
    r.content_type(content_type(&path)).body(file.data.into_owned())
}

/// The media type of a console file, by its extension.
fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("txt") | None => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_tile_origin_or_none() {
        let p = content_security_policy("https://{s}.tile.example/{z}/{x}/{y}.png");
        assert!(p.contains("img-src 'self' data: https://*.tile.example;"), "{p}");
        let p = content_security_policy("");
        assert!(p.contains("img-src 'self' data:;"), "{p}");
        assert!(p.contains("frame-ancestors 'none'") && !p.contains("unsafe"), "{p}");
    }

    #[test]
    fn every_console_file_has_a_known_type() {
        for name in Assets::iter() {
            if name.ends_with("LICENSE") || name.ends_with("VERSIONS") {
                continue;
            }
            assert_ne!(content_type(&name), "application/octet-stream", "{name}");
        }
        assert!(Assets::get("index.html").is_some());
    }
}
