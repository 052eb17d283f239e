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
        super::ops::healthz, super::ops::readyz, super::ops::metrics, super::ops::openapi_yaml, super::ops::openapi_json, super::ops::docs,
        super::auth::register, super::auth::login, super::auth::refresh, super::auth::logout,
        super::me::get_me, super::me::patch_me, super::me::delete_me, super::me::export_me,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError), responses(crate::error::Problem)),
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
    doc
}
