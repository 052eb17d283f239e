//! The OpenAPI document, generated from the handlers' annotations. The committed top-level
//! `openapi.yaml` is this document; a test fails when they differ.

use crate::service::Code;
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
    info(title = "Hereabouts API", version = "1.0.0"),
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
    Ok(serde_norway::to_string(&document_value()?)?)
}

/// The spec as JSON (what `/openapi.json` serves and `/docs` renders).
pub fn render_json() -> anyhow::Result<String> {
    Ok(serde_json::to_string(&document_value()?)?)
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
    declare_security(&mut doc);
    doc.info.description = Some(description());
    // relative: the origin the document was fetched from (what `/docs` and generated clients use)
    doc.servers = Some(vec![
        utoipa::openapi::server::ServerBuilder::new()
            .url("/")
            .description(Some("the server that serves this document"))
            .build(),
    ]);
    doc
}

/// The document's description: how to authenticate, and the table of error codes (from
/// [`Code::ALL`], so that it cannot drift from what the server answers).
fn description() -> String {
    let mut text = String::from(
        "Which of my connections are near me right now.\n\n\
         **Authentication.** `POST /v1/auth/register` or `/v1/auth/login` answers an `access_token`; \
         send it as `Authorization: Bearer <access_token>` (on `/docs`: the Authorize button). \
         Operations marked with a lock need it.\n\n\
         **Errors** are RFC 9457 `application/problem+json` documents with a stable `code`; \
         a 400 or 422 names the fields in `errors[]` (`[{\"field\": \"lat\", \"message\": \"...\"}]`).\n\n\
         | code | status | meaning |\n|---|---|---|\n",
    );
    text.push_str(&error_code_table());
    text
}

/// The table of error codes as the README and the spec's description show it.
pub fn error_code_table() -> String {
    Code::ALL
        .iter()
        .map(|code| {
            format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                super::error::status_of(*code).as_u16(),
                code.meaning()
            )
        })
        .collect()
}

/// Where a rule of the server lives in the document: a schema, down to one of its properties
/// (`["RegisterRequest", "properties", "email"]`).
type At = &'static [&'static str];

/// Patterns of request fields whose rules live in `domain` (declared once there, where property
/// tests check that every match is accepted).
fn patterns() -> Vec<(At, &'static str)> {
    use crate::domain::account::{EMAIL_PATTERN, VISIBLE_TEXT_PATTERN};
    use crate::domain::profile::{AVATAR_URL_PATTERN, LINKEDIN_URL_PATTERN};
    vec![
        (&["RegisterRequest", "properties", "email"], EMAIL_PATTERN),
        (&["RegisterRequest", "properties", "display_name"], VISIBLE_TEXT_PATTERN),
        (&["CreateRequest", "properties", "email"], EMAIL_PATTERN),
        (&["PatchMe", "properties", "display_name"], VISIBLE_TEXT_PATTERN),
        (&["PatchMe", "properties", "headline"], VISIBLE_TEXT_PATTERN),
        (&["PatchMe", "properties", "company"], VISIBLE_TEXT_PATTERN),
        (&["PatchMe", "properties", "title"], VISIBLE_TEXT_PATTERN),
        (&["PatchMe", "properties", "avatar_url"], AVATAR_URL_PATTERN),
        (&["PatchMe", "properties", "linkedin_url"], LINKEDIN_URL_PATTERN),
        (&["CreateEvent", "properties", "name"], VISIBLE_TEXT_PATTERN),
        (&["CheckinRequest", "properties", "recorded_at"], RFC3339_PATTERN),
        (&["CreateEvent", "properties", "starts_at"], RFC3339_PATTERN),
        (&["CreateEvent", "properties", "ends_at"], RFC3339_PATTERN),
        (&["PrivacyPatch", "properties", "paused_until"], RFC3339_PATTERN),
        (
            &["ContactMatchRequest", "properties", "email_sha256", "items"],
            "^[0-9a-fA-F]{64}$",
        ),
        (&["DeviceRequest", "properties", "locale"], "^[A-Za-z0-9_-]{0,35}$"),
    ]
}

/// Patterns of request bodies that are not JSON (a path from the document's root to the schema).
fn body_patterns() -> Vec<(At, &'static str)> {
    vec![
        (
            &[
                "paths",
                "/v1/contacts/import/linkedin",
                "post",
                "requestBody",
                "content",
                "text/csv",
                "schema",
            ],
            "(^|\\n)\\uFEFF?First Name,Last Name,URL,Email Address,Company,Position,Connected On\\r?(\\n|$)",
        ),
        (
            // content lines of printable ASCII with the usual property names, events one level
            // deep: a subset of what the iCalendar parser reads (events without UID, GEO or dates are
            // skipped, and the answer says why)
            &[
                "paths",
                "/v1/trips/import",
                "post",
                "requestBody",
                "content",
                "text/calendar",
                "schema",
            ],
            concat!(
                "^BEGIN:VCALENDAR\\r\\n(",
                "(PRODID|VERSION|CALSCALE|METHOD|X-[A-Z0-9-]{1,30}):[ -~]{0,200}\\r\\n|",
                "BEGIN:VEVENT\\r\\n((UID|SUMMARY|DESCRIPTION|LOCATION|GEO|DTSTART|DTEND|DTSTAMP|X-[A-Z0-9-]{1,30})",
                "(;[A-Z][A-Z0-9-]{0,30}=[A-Za-z0-9-]{1,30})*:[ -~]{0,200}\\r\\n)*END:VEVENT\\r\\n",
                ")*END:VCALENDAR\\r\\n$",
            ),
        ),
    ]
}

/// RFC 3339 times as the server parses them (upper-case `T` and `Z`, seconds below 60).
const RFC3339_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// Rules across fields: `oneOf`/`anyOf` added to request schemas.
fn combinations() -> Vec<(At, &'static str, serde_json::Value)> {
    use serde_json::json;
    let text = json!({"type": "string"});
    let none = json!({"type": "null"});
    vec![
        // exactly one of to_user_id and email
        (
            &["CreateRequest"],
            "oneOf",
            json!([
                {"required": ["to_user_id"], "properties": {"to_user_id": text, "email": none}},
                {"required": ["email"], "properties": {"email": text, "to_user_id": none}},
            ]),
        ),
        // ids (at least one) or up_to
        (
            &["MarkRead"],
            "anyOf",
            json!([
                {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
                {"required": ["up_to"], "properties": {"up_to": text}},
            ]),
        ),
        // the token's syntax depends on the platform (a webhook's URL must also resolve to public
        // addresses, which no schema can say: 422 otherwise)
        (
            &["DeviceRequest"],
            "oneOf",
            json!([
                {"required": ["platform", "token"], "properties": {"platform": {"const": "ios"}, "token": {"type": "string", "pattern": "^[A-Za-z0-9]{16,200}$"}, "subscription": {"type": "null"}}},
                {"required": ["platform", "token"], "properties": {"platform": {"const": "android"}, "token": {"type": "string", "pattern": "^[A-Za-z0-9:._-]{8,4096}$"}, "subscription": {"type": "null"}}},
                {"required": ["platform", "token"], "properties": {"platform": {"const": "webhook"}, "token": {"type": "string", "pattern": "^https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,4})?(/[A-Za-z0-9._~/%-]{0,1000})?$"}, "subscription": {"type": "null"}}},
                // a browser: its push subscription (the keys must also be a point of P-256 and
                // the endpoint resolve to public addresses, which no schema can say: 422 otherwise)
                {"required": ["platform", "subscription"], "properties": {"platform": {"const": "web"}, "subscription": {"$ref": "#/components/schemas/WebSubscription"}}},
            ]),
        ),
        (
            &["PrivacyPatch", "properties", "time_zone"],
            "enum",
            serde_json::Value::Array(
                crate::domain::quiet::time_zone_names()
                    .iter()
                    .map(|n| json!(n))
                    .chain([serde_json::Value::Null])
                    .collect(),
            ),
        ),
        (
            &["WebSubscriptionKeys", "properties", "p256dh"],
            "pattern",
            json!("^[A-Za-z0-9_-]{87}=?$"),
        ),
        (
            &["WebSubscriptionKeys", "properties", "auth"],
            "pattern",
            json!("^[A-Za-z0-9_-]{22}(==)?$"),
        ),
    ]
}

/// The value at a path of schema names and keys, under `components/schemas`.
fn schema_at(doc: &mut serde_norway::Value, at: At) -> Option<&mut serde_norway::Value> {
    value_at(doc.get_mut("components")?.get_mut("schemas")?, at)
}

fn value_at(mut v: &mut serde_norway::Value, at: At) -> Option<&mut serde_norway::Value> {
    for key in at {
        v = v.get_mut(*key)?;
    }
    Some(v)
}

/// Writes into the serialized document the rules utoipa's attributes cannot carry (patterns from
/// `domain` constants, rules across fields); each must land (a test checks it).
fn add_rules(doc: &mut serde_norway::Value) -> Result<(), String> {
    for (at, pattern) in patterns() {
        let target = schema_at(doc, at).and_then(serde_norway::Value::as_mapping_mut);
        let target = target.ok_or_else(|| format!("no schema at {at:?}"))?;
        target.insert("pattern".into(), pattern.into());
    }
    for (at, pattern) in body_patterns() {
        let target = value_at(doc, at).and_then(serde_norway::Value::as_mapping_mut);
        let target = target.ok_or_else(|| format!("no schema at {at:?}"))?;
        target.insert("pattern".into(), pattern.into());
        // the shortest text that matches: no empty body is ever valid
        let shortest = if pattern.contains("VCALENDAR") { 32 } else { 68 };
        target.insert("minLength".into(), shortest.into());
    }
    for (at, key, rule) in combinations() {
        let value = serde_norway::to_value(rule).map_err(|e| e.to_string())?;
        let target = schema_at(doc, at).and_then(serde_norway::Value::as_mapping_mut);
        target
            .ok_or_else(|| format!("no schema at {at:?}"))?
            .insert(key.into(), value);
    }
    Ok(())
}

/// Operations that need no token; every other one declares the bearer scheme itself.
const PUBLIC: &[&str] = &[
    "healthz",
    "readyz",
    "openapi_yaml",
    "openapi_json",
    "docs",
    "console",
    "config_json",
    "register",
    "login",
    "refresh",
    "logout",
    "calendar_feed",
];

/// `security: []` on the public operations, so that each operation says whether it needs a token.
fn declare_security(doc: &mut utoipa::openapi::OpenApi) {
    for (_, _, op) in operations(doc) {
        if op.security.is_none() && op.operation_id.as_deref().is_some_and(|id| PUBLIC.contains(&id)) {
            op.security = Some(vec![]);
        }
    }
}

/// Links between operations (OpenAPI `links`): where the ids an operation takes come from. A
/// client (and schemathesis' stateful phase) follows them to real resources.
/// (operation, status, link to, parameters as runtime expressions, request body)
#[allow(clippy::type_complexity)]
const LINKS: &[(&str, &str, &str, &[(&str, &str)], Option<&str>)] = &[
    ("create_trip", "201", "get_trip", &[("id", "$response.body#/id")], None),
    (
        "create_trip",
        "201",
        "patch_trip",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_trip",
        "201",
        "trip_overlaps",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_trip",
        "201",
        "delete_trip",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_request",
        "201",
        "accept_request",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_request",
        "201",
        "decline_request",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_request",
        "201",
        "get_user",
        &[("id", "$response.body#/to_user_id")],
        None,
    ),
    (
        "create_request",
        "201",
        "put_block",
        &[("user_id", "$response.body#/to_user_id")],
        None,
    ),
    (
        "create_request",
        "201",
        "delete_block",
        &[("user_id", "$response.body#/to_user_id")],
        None,
    ),
    (
        "create_request",
        "200",
        "delete_connection",
        &[("user_id", "$response.body#/user_id")],
        None,
    ),
    (
        "create_request",
        "200",
        "mute",
        &[("user_id", "$response.body#/user_id")],
        None,
    ),
    (
        "create_request",
        "200",
        "unmute",
        &[("user_id", "$response.body#/user_id")],
        None,
    ),
    (
        "accept_request",
        "200",
        "delete_connection",
        &[("user_id", "$response.body#/user_id")],
        None,
    ),
    (
        "register_device",
        "201",
        "delete_device",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_share",
        "201",
        "delete_share",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_event",
        "201",
        "get_event",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_event",
        "201",
        "event_people",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_event",
        "201",
        "join_event",
        &[("id", "$response.body#/id")],
        Some("$response.body#/join_code"),
    ),
    (
        "create_event",
        "201",
        "leave_event",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_event",
        "201",
        "delete_event",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_zone",
        "201",
        "update_zone",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_zone",
        "201",
        "delete_zone",
        &[("id", "$response.body#/id")],
        None,
    ),
];

/// Adds [`LINKS`] to the serialized document. (utoipa 5's `Link` writes its fields in snake
/// case, `operation_id`, which no tool reads: the links are written here, as the spec spells them.)
fn add_links(doc: &mut serde_norway::Value) {
    use serde_norway::{Mapping, Value};
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, item) in paths.iter_mut() {
        let Some(item) = item.as_mapping_mut() else { continue };
        for (_, op) in item.iter_mut() {
            let Some(id) = op.get("operationId").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            for (_, status, to, params, body) in LINKS.iter().filter(|l| l.0 == id) {
                let Some(response) = op
                    .get_mut("responses")
                    .and_then(|r| r.get_mut(*status))
                    .and_then(Value::as_mapping_mut)
                else {
                    continue;
                };
                let mut link = Mapping::new();
                link.insert("operationId".into(), (*to).into());
                let parameters: Mapping = params.iter().map(|(n, e)| ((*n).into(), (*e).into())).collect();
                link.insert("parameters".into(), Value::Mapping(parameters));
                if let Some(b) = body {
                    let mut request = Mapping::new();
                    request.insert("join_code".into(), (*b).into());
                    link.insert("requestBody".into(), Value::Mapping(request));
                }
                let links = response
                    .entry("links".into())
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Some(links) = links.as_mapping_mut() {
                    links.insert((*to).into(), Value::Mapping(link));
                }
            }
        }
    }
}

/// The document as served and committed: [`document`] with its links, in the order utoipa writes.
pub fn document_value() -> anyhow::Result<serde_norway::Value> {
    let mut value = serde_norway::to_value(document())?;
    add_links(&mut value);
    add_rules(&mut value).map_err(anyhow::Error::msg)?;
    Ok(value)
}

/// Every operation of the document, with its path and method.
fn operations(
    doc: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (String, &'static str, &mut utoipa::openapi::path::Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("put", item.put.as_mut()),
            ("patch", item.patch.as_mut()),
            ("delete", item.delete.as_mut()),
        ]
        .into_iter()
        .filter_map(move |(m, op)| op.map(|op| (path.clone(), m, op)))
    })
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
        "/admin",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_says_whether_it_needs_a_token() {
        let mut doc = document();
        for (path, method, op) in operations(&mut doc) {
            assert!(op.security.is_some(), "{method} {path} declares no security");
        }
    }

    #[test]
    fn links_name_operations_of_the_document() {
        let mut doc = document();
        let ids: Vec<String> = operations(&mut doc)
            .filter_map(|(_, _, op)| op.operation_id.clone())
            .collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "operation ids are unique");
        for (from, _, to, _, _) in LINKS {
            assert!(
                ids.iter().any(|i| i == from) && ids.iter().any(|i| i == to),
                "{from} -> {to}"
            );
        }
        let json: serde_json::Value = serde_json::from_str(&render_json().expect("json")).expect("parses");
        let links = json["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().into_iter().flat_map(|m| m.values()))
            .flat_map(|op| op["responses"].as_object().into_iter().flat_map(|r| r.values()))
            .filter_map(|r| r["links"].as_object())
            .map(|l| l.len())
            .sum::<usize>();
        assert_eq!(links, LINKS.len(), "every link is written");
        for id in PUBLIC {
            assert!(ids.iter().any(|i| i == id), "{id}");
        }
        let yaml = render_yaml().expect("every rule lands on a schema of the document");
        assert!(yaml.contains("servers:"));
    }

    const README: &str = include_str!("../../README.md");

    #[test]
    fn the_readme_lists_every_error_code() {
        let table = error_code_table();
        assert!(
            README.contains(&format!("| code | status | meaning |\n|---|---|---|\n{table}")),
            "README.md's table of error codes differs from service::Code; it should read:\n{table}"
        );
    }

    #[test]
    fn the_readme_lists_every_operation() {
        let section = README
            .split_once("| area | endpoints |\n|---|---|\n")
            .and_then(|(_, rest)| rest.split_once("\n\n"))
            .map(|(table, _)| table)
            .expect("README.md has the endpoint table");
        let mut listed = std::collections::BTreeSet::new();
        for item in section.split('`').skip(1).step_by(2) {
            let Some((methods, path)) = item.split_once(' ') else {
                continue;
            };
            if !methods.chars().all(|c| c.is_ascii_uppercase() || c == '/') || !path.starts_with('/') {
                continue;
            }
            let path = path.split('?').next().unwrap_or(path);
            for m in methods.split('/') {
                listed.insert(format!("{m} {path}"));
            }
        }
        let mut doc = document();
        let spec: std::collections::BTreeSet<String> = operations(&mut doc)
            .map(|(path, method, _)| format!("{} {path}", method.to_uppercase()))
            .collect();
        let missing: Vec<&String> = spec.difference(&listed).collect();
        let unknown: Vec<&String> = listed.difference(&spec).filter(|o| *o != "GET /metrics").collect();
        assert!(
            missing.is_empty(),
            "operations missing from README.md's table: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "README.md lists operations the spec does not have: {unknown:?}"
        );
    }
}
