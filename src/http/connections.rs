//! `/v1/connections*`, `/v1/blocks*`, `/v1/contacts/match`: the connection graph.

use super::error::{ApiError, ApiResult};
use super::extract::AuthUser;
use super::page_params;
use super::profiles::Profile;
use crate::domain::profile::ConnectionState;
use crate::service::Ctx;
use crate::service::connections::{self as graph_service, Addressee, Asked};
use crate::store::graph;
use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

/// Largest body of `POST /v1/contacts/match`: 1,000 hashes do not fit the default 64 KiB.
const CONTACTS_BODY_LIMIT: usize = 128 * 1024;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(create_request)
        .service(list_requests)
        .service(accept_request)
        .service(decline_request)
        .service(list_connections)
        .service(delete_connection)
        .service(put_block)
        .service(delete_block)
        .service(list_blocks)
        .service(
            web::resource("/v1/contacts/match")
                .app_data(super::json_config(CONTACTS_BODY_LIMIT))
                .route(web::post().to(match_contacts))
                .default_service(web::to(super::not_found)),
        );
}

/// The OpenAPI paths of this module (merged into the whole document).
#[derive(OpenApi)]
#[openapi(
    paths(
        create_request,
        list_requests,
        accept_request,
        decline_request,
        list_connections,
        delete_connection,
        put_block,
        delete_block,
        list_blocks,
        match_contacts,
    ),
    components(schemas(
        CreateRequest,
        ConnectionRequest,
        RequestStatus,
        RequestList,
        Direction,
        Connection,
        ConnectionList,
        Block,
        BlockList,
        ContactMatchRequest,
        ContactMatch,
        ContactMatches,
    ))
)]
pub struct Doc;

// ---------------------------------------------------------------------------------------------
// Wire types

/// Another user the caller is connected with, and their profile summary.
#[derive(Serialize, ToSchema)]
pub struct Connection {
    pub user_id: Uuid,
    #[schema(example = "Alex")]
    pub display_name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub connected_at: OffsetDateTime,
    #[schema(example = "Maps at scale")]
    pub headline: Option<String>,
    #[schema(example = "Acme, Inc.")]
    pub company: Option<String>,
    #[schema(example = "CTO")]
    pub title: Option<String>,
    #[schema(example = "https://cdn.example.com/alex.png")]
    pub avatar_url: Option<String>,
}

impl From<graph::ConnectionRecord> for Connection {
    fn from(r: graph::ConnectionRecord) -> Self {
        Self {
            user_id: r.user_id,
            display_name: r.display_name,
            connected_at: r.connected_at,
            headline: r.profile.headline,
            company: r.profile.company,
            title: r.profile.title,
            avatar_url: r.profile.avatar_url,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
}

/// A pending connection request; `user` is the other party (the sender of an incoming request,
/// the addressee of an outgoing one), whose summary is repeated at the top level.
#[derive(Serialize, ToSchema)]
pub struct ConnectionRequest {
    pub id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Uuid,
    pub status: RequestStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[schema(example = "Alex")]
    pub display_name: String,
    pub headline: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub avatar_url: Option<String>,
    pub user: Profile,
}

impl ConnectionRequest {
    /// The request as `viewer` (one of its two users) sees it.
    fn seen_by(r: graph::RequestRecord, viewer: Uuid) -> Self {
        let (other, connection) = if r.from_user_id == viewer {
            (r.to_user_id, ConnectionState::PendingOutgoing)
        } else {
            (r.from_user_id, ConnectionState::PendingIncoming)
        };
        let p = r.other.profile;
        Self {
            id: r.id,
            from_user_id: r.from_user_id,
            to_user_id: r.to_user_id,
            status: RequestStatus::Pending,
            created_at: r.created_at,
            display_name: r.other.display_name.clone(),
            headline: p.headline.clone(),
            company: p.company.clone(),
            title: p.title.clone(),
            avatar_url: p.avatar_url.clone(),
            user: Profile::new(other, r.other.display_name, p, connection),
        }
    }
}

/// A user the caller blocked.
#[derive(Serialize, ToSchema)]
pub struct Block {
    pub user_id: Uuid,
    #[schema(example = "Alex")]
    pub display_name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub blocked_at: OffsetDateTime,
}

impl From<graph::BlockRecord> for Block {
    fn from(r: graph::BlockRecord) -> Self {
        Self {
            user_id: r.user_id,
            display_name: r.display_name,
            blocked_at: r.blocked_at,
        }
    }
}

/// A page of connections; `next_cursor` is null on the last page.
#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<Connection>,
    pub next_cursor: Option<String>,
}

/// A page of requests; `next_cursor` is null on the last page.
#[derive(Serialize, ToSchema)]
pub struct RequestList {
    pub items: Vec<ConnectionRequest>,
    pub next_cursor: Option<String>,
}

/// A page of blocks; `next_cursor` is null on the last page.
#[derive(Serialize, ToSchema)]
pub struct BlockList {
    pub items: Vec<Block>,
    pub next_cursor: Option<String>,
}

/// Exactly one of `to_user_id` and `email`.
#[derive(Deserialize, ToSchema)]
pub struct CreateRequest {
    pub to_user_id: Option<Uuid>,
    #[schema(example = "alex@example.com", max_length = 254)]
    pub email: Option<String>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// `?limit=&cursor=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

/// `?direction=&limit=&cursor=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// `incoming` (addressed to the caller, the default) or `outgoing`.
    pub direction: Option<Direction>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ContactMatchRequest {
    /// Lowercase hex of sha256(lowercase(trim(email))); at most 1,000.
    #[schema(max_items = 1000)]
    pub email_sha256: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactMatch {
    /// The hash as it was sent.
    pub email_sha256: String,
    pub user_id: Uuid,
    #[schema(example = "Alex")]
    pub display_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ContactMatches {
    pub matches: Vec<ContactMatch>,
}

fn next_cursor<T>(page: &graph::Page<T>) -> Option<String> {
    page.next.as_ref().map(graph::Cursor::encode)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Asks another user (by id or by email) for a connection.
///
/// 201 with the pending request; asking again while it is pending answers 201 with the same
/// request (nothing changes). When the other user already asked the caller, the two are connected
/// at once: 200 with the connection. Unknown and suspended users are 404.
#[utoipa::path(tag = "connections", security(("bearer" = [])), request_body = CreateRequest, responses(
    (status = 201, body = ConnectionRequest, description = "the pending request (new, or the one already pending)"),
    (status = 200, body = Connection, description = "the other user had asked the caller: connected now"),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
    (status = 409, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 503, response = crate::http::error::Problem),
))]
#[post("/v1/connections/requests")]
pub async fn create_request(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<CreateRequest>,
) -> ApiResult<HttpResponse> {
    let to = match body.into_inner() {
        CreateRequest {
            to_user_id: Some(id),
            email: None,
        } => Addressee::Id(id),
        CreateRequest {
            to_user_id: None,
            email: Some(email),
        } => Addressee::Email(email),
        _ => {
            return Err(ApiError::field(
                "to_user_id",
                "give exactly one of to_user_id and email",
            ));
        }
    };
    Ok(match graph_service::request(&ctx, me.id, to).await? {
        Asked::Pending(r) => HttpResponse::Created().json(ConnectionRequest::seen_by(r, me.id)),
        Asked::Connected(c) => HttpResponse::Ok().json(Connection::from(c)),
    })
}

/// Pending requests addressed to the caller (`incoming`) or sent by them (`outgoing`), newest first.
#[utoipa::path(tag = "connections", security(("bearer" = [])), params(RequestsQuery), responses(
    (status = 200, body = RequestList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/connections/requests")]
pub async fn list_requests(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<RequestsQuery>,
) -> ApiResult<web::Json<RequestList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let direction = match q.direction.unwrap_or(Direction::Incoming) {
        Direction::Incoming => graph::Direction::Incoming,
        Direction::Outgoing => graph::Direction::Outgoing,
    };
    let page = graph_service::requests(&ctx, me.id, direction, limit, cursor).await?;
    Ok(web::Json(RequestList {
        next_cursor: next_cursor(&page),
        items: page
            .items
            .into_iter()
            .map(|r| ConnectionRequest::seen_by(r, me.id))
            .collect(),
    }))
}

/// Accepts a request addressed to the caller: both are connected. Anyone else gets 404.
#[utoipa::path(tag = "connections", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "request id")),
    responses(
        (status = 200, body = Connection),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 503, response = crate::http::error::Problem),
))]
#[post("/v1/connections/requests/{id}/accept")]
pub async fn accept_request(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Connection>> {
    let c = graph_service::accept(&ctx, me.id, id.into_inner()).await?;
    Ok(web::Json(c.into()))
}

/// Declines (deletes) a request addressed to the caller. Anyone else gets 404.
#[utoipa::path(tag = "connections", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "request id")),
    responses(
        (status = 204, description = "declined"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[post("/v1/connections/requests/{id}/decline")]
pub async fn decline_request(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    graph_service::decline(&ctx, me.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------
// Connections

/// The caller's connections, newest first. Pages are stable while the list changes: no item is
/// repeated and none that existed throughout is skipped.
#[utoipa::path(tag = "connections", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = ConnectionList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/connections")]
pub async fn list_connections(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<ListQuery>,
) -> ApiResult<web::Json<ConnectionList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = graph_service::list(&ctx, me.id, limit, cursor).await?;
    Ok(web::Json(ConnectionList {
        next_cursor: next_cursor(&page),
        items: page.items.into_iter().map(Into::into).collect(),
    }))
}

/// Removes a connection, for both users.
#[utoipa::path(tag = "connections", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "the connected user")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 503, response = crate::http::error::Problem),
))]
#[delete("/v1/connections/{user_id}")]
pub async fn delete_connection(ctx: web::Data<Ctx>, me: AuthUser, user_id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    graph_service::remove(&ctx, me.id, user_id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------
// Blocks

/// Blocks a user (idempotent): the connection and pending requests in both directions go, and
/// each is hidden from the other from now on. Suspended users can be blocked too.
#[utoipa::path(tag = "blocks", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "the user to block")),
    responses(
        (status = 204, description = "blocked"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 422, response = crate::http::error::Problem),
        (status = 503, response = crate::http::error::Problem),
))]
#[put("/v1/blocks/{user_id}")]
pub async fn put_block(ctx: web::Data<Ctx>, me: AuthUser, user_id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    graph_service::block(&ctx, me.id, user_id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lifts a block (it does not restore the connection).
#[utoipa::path(tag = "blocks", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "the blocked user")),
    responses(
        (status = 204, description = "unblocked"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/blocks/{user_id}")]
pub async fn delete_block(ctx: web::Data<Ctx>, me: AuthUser, user_id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    graph_service::unblock(&ctx, me.id, user_id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The users the caller blocked, newest first.
#[utoipa::path(tag = "blocks", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = BlockList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/blocks")]
pub async fn list_blocks(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<ListQuery>,
) -> ApiResult<web::Json<BlockList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = graph_service::blocks(&ctx, me.id, limit, cursor).await?;
    Ok(web::Json(BlockList {
        next_cursor: next_cursor(&page),
        items: page.items.into_iter().map(Into::into).collect(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Contacts

/// Finds which of the caller's contacts (by SHA-256 of their normalised email) use the app.
///
/// At most 1,000 hashes (body up to 128 KiB); each is 64 hex digits. Only users who allow
/// `discoverable_by_email` are returned; never the caller, suspended users, or users blocked in
/// either direction.
#[utoipa::path(post, path = "/v1/contacts/match", tag = "connections", security(("bearer" = [])),
    request_body = ContactMatchRequest,
    responses(
        (status = 200, body = ContactMatches),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 413, response = crate::http::error::Problem),
        (status = 422, response = crate::http::error::Problem),
))]
pub async fn match_contacts(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<ContactMatchRequest>,
) -> ApiResult<web::Json<ContactMatches>> {
    let found = graph_service::match_contacts(&ctx, me.id, &body.email_sha256).await?;
    Ok(web::Json(ContactMatches {
        matches: found
            .into_iter()
            .map(|m| ContactMatch {
                email_sha256: m.email_sha256,
                user_id: m.user.user_id,
                display_name: m.user.display_name,
            })
            .collect(),
    }))
}
