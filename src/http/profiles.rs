//! `/v1/users/{id}` (another user's profile) and `/v1/contacts/import/linkedin` (a LinkedIn
//! `Connections.csv` matched against the app's users).

use super::error::{ApiError, ApiResult};
use super::extract::AuthUser;
use crate::domain::linkedin::MAX_BYTES;
use crate::domain::profile::ConnectionState;
use crate::service::profiles;
use crate::service::{Code, Ctx, ServiceError};
use crate::store::users::ProfileFields;
use actix_web::http::header;
use actix_web::{HttpRequest, get, post, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

/// How much of an oversized upload is read (and dropped) before the 413.
const DRAIN_BYTES: usize = 4 * MAX_BYTES;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_user).service(import_linkedin);
}

/// The OpenAPI paths of this module (merged into the whole document).
#[derive(OpenApi)]
#[openapi(
    paths(get_user, import_linkedin),
    components(schemas(Profile, ConnectionState, ImportResult, ImportMatch, MatchedBy, ImportError))
)]
pub struct Doc;

/// Another user's profile, and how they stand to the caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    pub id: Uuid,
    #[schema(example = "Alex")]
    pub display_name: String,
    #[schema(example = "Maps at scale")]
    pub headline: Option<String>,
    #[schema(example = "Acme, Inc.")]
    pub company: Option<String>,
    #[schema(example = "CTO")]
    pub title: Option<String>,
    #[schema(example = "https://cdn.example.com/alex.png")]
    pub avatar_url: Option<String>,
    #[schema(example = "https://www.linkedin.com/in/alex")]
    pub linkedin_url: Option<String>,
    pub connection: ConnectionState,
}

impl Profile {
    /// A profile from its parts.
    pub fn new(id: Uuid, display_name: String, f: ProfileFields, connection: ConnectionState) -> Self {
        Self {
            id,
            display_name,
            headline: f.headline,
            company: f.company,
            title: f.title,
            avatar_url: f.avatar_url,
            linkedin_url: f.linkedin_url,
            connection,
        }
    }
}

impl From<profiles::Profile> for Profile {
    fn from(p: profiles::Profile) -> Self {
        Self::new(p.id, p.display_name, p.fields, p.connection)
    }
}

/// A user's profile, for the caller's connections, anyone with a pending request to or from the
/// caller, and fellow attendees of an event both joined. Everyone else — blocked pairs (either
/// way) and suspended users included — gets 404.
#[utoipa::path(tag = "profiles", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the user")),
    responses(
        (status = 200, body = Profile),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/users/{id}")]
pub async fn get_user(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<web::Json<Profile>> {
    Ok(web::Json(profiles::profile(&ctx, me.id, id.into_inner()).await?.into()))
}

/// `?request=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Send a connection request to each match who is neither connected nor pending (default false).
    pub request: Option<bool>,
}

/// Which column of the row found the user (`email` wins when both did).
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Email,
    LinkedinUrl,
}

/// A user of the app found in the export.
#[derive(Serialize, ToSchema)]
pub struct ImportMatch {
    pub user_id: Uuid,
    #[schema(example = "Alex")]
    pub display_name: String,
    pub matched_by: MatchedBy,
    /// How the two stand now (after the requests this import sent).
    pub connection: ConnectionState,
}

/// A row that could not be read.
#[derive(Serialize, ToSchema)]
pub struct ImportError {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    pub message: String,
}

/// What the import found. Nothing of the uploaded rows is stored.
#[derive(Serialize, ToSchema)]
pub struct ImportResult {
    /// Data rows read (after the header), unreadable ones included.
    pub rows: usize,
    pub matched: Vec<ImportMatch>,
    /// Rows that matched nobody.
    pub unmatched: usize,
    /// Connection requests sent (0 without `?request=true`).
    pub requested: usize,
    pub errors: Vec<ImportError>,
}

fn is_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
}

/// Finds who of a LinkedIn network uses the app, from the `Connections.csv` of a LinkedIn data
/// export (`Content-Type: text/csv`): any preamble before the header line
/// `First Name,Last Name,URL,Email Address,Company,Position,Connected On`, an optional UTF-8
/// BOM, quoted fields, CRLF or LF, blank emails.
///
/// A row matches a user who may be found by email (its `Email Address`, compared as emails
/// are) or whose LinkedIn URL equals the row's `URL` after normalisation. Never matched: the
/// caller, blocked pairs (either way), suspended users. At most 30,000 rows and 5 MiB (413);
/// 415 for another content type; 400 without the header line. With `?request=true` a
/// connection request goes to each match who is neither connected nor pending.
#[utoipa::path(tag = "connections", security(("bearer" = [])), params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "LinkedIn Connections.csv"),
    responses(
        (status = 200, body = ImportResult),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 413, response = crate::http::error::Problem),
        (status = 415, response = crate::http::error::Problem),
))]
#[post("/v1/contacts/import/linkedin")]
pub async fn import_linkedin(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    req: HttpRequest,
    q: super::extract::Query<ImportQuery>,
    mut payload: web::Payload,
) -> ApiResult<web::Json<ImportResult>> {
    if !is_csv(&req) {
        return Err(ApiError::refused(
            Code::UnsupportedMediaType,
            "send the Connections.csv as text/csv",
        ));
    }
    let too_large = || ApiError::refused(Code::PayloadTooLarge, "at most 5 MiB per import");
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(64 * 1024).min(MAX_BYTES));
    let mut over = declared.is_some_and(|n| n > MAX_BYTES);
    let mut seen = 0usize;
    // past the limit the rest is read and dropped (up to a bound), so that a client still
    // writing its body gets the 413 instead of a reset connection
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ServiceError::bad_request_in("body", format!("cannot read the body: {e}")))?;
        seen += chunk.len();
        if over || seen > MAX_BYTES {
            over = true;
            if seen > DRAIN_BYTES {
                break;
            }
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    if over {
        return Err(too_large());
    }
    let r = profiles::import_linkedin(&ctx, me.id, &body, q.request.unwrap_or(false)).await?;
    Ok(web::Json(ImportResult {
        rows: r.rows,
        matched: r
            .matched
            .into_iter()
            .map(|m| ImportMatch {
                user_id: m.user_id,
                display_name: m.display_name,
                matched_by: match m.matched_by {
                    profiles::MatchedBy::Email => MatchedBy::Email,
                    profiles::MatchedBy::LinkedinUrl => MatchedBy::LinkedinUrl,
                },
                connection: m.connection,
            })
            .collect(),
        unmatched: r.unmatched,
        requested: r.requested,
        errors: r
            .errors
            .into_iter()
            .map(|e| ImportError {
                line: e.line,
                message: e.message,
            })
            .collect(),
    }))
}
