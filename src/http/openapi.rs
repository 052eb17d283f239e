//! The OpenAPI document, generated from the handlers' annotations. The committed top-level
//! `openapi.yaml` is this document; a test fails when they differ.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The committed spec, served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hereabouts API", version = "1.0.0", description = "Which of my connections are near me right now. Errors are RFC 9457 problem+json with a stable `code`."),
    modifiers(&BearerAuth),
    paths(
        super::ops::healthz, super::ops::readyz, super::ops::openapi_yaml, super::ops::openapi_json, super::ops::docs,
        super::auth::register, super::auth::login, super::auth::refresh, super::auth::logout, super::auth::logout_all,
        super::me::get_me, super::me::patch_me, super::me::delete_me, super::me::export_me, super::me::change_password,
    ),
    components(schemas(crate::http::error::Problem, crate::domain::FieldError), responses(crate::http::error::Problem)),
)]
pub struct ApiDoc;

/// Renders the spec as YAML (what `hereabouts openapi` prints and the committed file holds).
pub fn render_yaml() -> anyhow::Result<String> {
    Ok(document().to_yaml()?)
}

/// The whole document: the core paths plus each resource module's own `Doc`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::connections::Doc::openapi());
    doc.merge(super::admin::Doc::openapi());
    doc.merge(super::privacy::Doc::openapi());
    doc.merge(super::checkins::Doc::openapi());
    doc.merge(super::nearby::Doc::openapi());
    doc.merge(super::devices::Doc::openapi());
    doc.merge(super::notifications::Doc::openapi());
    doc.merge(super::console::Doc::openapi());
    doc.merge(super::trips::Doc::openapi());
    doc.merge(super::shares::Doc::openapi());
    doc.merge(super::profiles::Doc::openapi());
    doc.merge(super::events::Doc::openapi());
    add_common_responses(&mut doc);
    doc
}

/// Responses every operation of a kind can give, added in one place so that no handler forgets
/// them: 415 where a JSON body is read, 503 wherever a store is used, 405 is not listed (it is
/// the answer for methods outside the document).
fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    let problem = || RefOr::Ref(Ref::from_response_name("Problem"));
    let storeless = [
        "/healthz",
        "/metrics",
        "/openapi.yaml",
        "/openapi.json",
        "/docs",
        "/admin/",
        "/admin/config.json",
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for op in ops.into_iter().flatten() {
            if op.request_body.is_some() {
                op.responses.responses.entry("415".into()).or_insert_with(problem);
            }
            if !storeless.contains(&path.as_str()) {
                op.responses.responses.entry("503".into()).or_insert_with(problem);
            }
        }
    }
}

/// The methods the document lists for a request path (for 405 answers), if the path is known.
pub fn allowed_methods(path: &str) -> Option<Vec<&'static str>> {
    static TABLE: std::sync::OnceLock<Vec<(Vec<String>, Vec<&'static str>)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        document()
            .paths
            .paths
            .iter()
            .map(|(p, item)| {
                let segments = p.trim_matches('/').split('/').map(str::to_string).collect();
                let methods = [
                    (item.get.is_some(), "GET"),
                    (item.post.is_some(), "POST"),
                    (item.put.is_some(), "PUT"),
                    (item.patch.is_some(), "PATCH"),
                    (item.delete.is_some(), "DELETE"),
                ]
                .into_iter()
                .filter_map(|(has, m)| has.then_some(m))
                .collect();
                (segments, methods)
            })
            .collect()
    });
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // the most literal template wins: `/v1/connections/requests` before `/v1/connections/{user_id}`
    table
        .iter()
        .filter(|(segments, _)| {
            segments.len() == parts.len()
                && segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| (s.starts_with('{') && !p.is_empty()) || s == p)
        })
        .min_by_key(|(segments, _)| segments.iter().filter(|s| s.starts_with('{')).count())
        .map(|(_, methods)| methods.clone())
}
