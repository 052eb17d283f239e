//! `/v1/checkins*`: opt-in check-ins.

use super::error::ApiResult;
use super::extract::AuthUser;
use crate::service::Ctx;
use crate::service::ServiceError;
use crate::service::live::{self, Checkin, CheckinInput, Outcome};
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(post_checkin).service(get_current).service(delete_current);
}

#[derive(OpenApi)]
#[openapi(
    paths(post_checkin, get_current, delete_current),
    components(schemas(Checkin, CheckinRequest))
)]
pub struct Doc;

/// A check-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckinRequest {
    #[schema(example = 40.7128, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = -74.006, minimum = -180, maximum = 180)]
    pub lng: f64,
    #[schema(example = 12.5, minimum = 0, maximum = 1000000)]
    pub accuracy_m: Option<f64>,
    /// When the phone took the fix; at most 5 minutes ahead, not older than the TTL. Default: now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
    /// Lifetime in seconds (default: the user's `default_ttl_s`), capped by the policy's `max_ttl_s`.
    #[schema(example = 3600, minimum = 60)]
    pub ttl_s: Option<i64>,
    /// Makes the call idempotent within the TTL.
    /// Printable ASCII.
    #[schema(
        example = "phone-7f3a-0001",
        min_length = 1,
        max_length = 128,
        pattern = "^[ -~]{1,128}$"
    )]
    pub client_id: Option<String>,
}

/// Checks in. 201 with the new live check-in, or the first answer for a repeated `client_id`;
/// 200 with the live check-in when this one is older and was ignored. 409 `sharing_disabled`;
/// 422 `invalid_coordinates` or `validation_failed`.
#[utoipa::path(tag = "checkins", security(("bearer" = [])), request_body = CheckinRequest, responses(
    (status = 201, body = Checkin),
    (status = 200, description = "older than the live check-in: ignored, the live one is returned", body = Checkin),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 409, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 429, response = crate::http::error::Problem),
))]
#[post("/v1/checkins")]
pub async fn post_checkin(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<CheckinRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let input = CheckinInput {
        lat: b.lat,
        lng: b.lng,
        accuracy_m: b.accuracy_m,
        recorded_at: b.recorded_at,
        ttl_s: b.ttl_s,
        client_id: b.client_id,
    };
    Ok(match live::checkin(&ctx, me.id, input).await? {
        Outcome::Created(c) | Outcome::Replayed(c) => HttpResponse::Created().json(c),
        Outcome::Ignored(c) => HttpResponse::Ok().json(c),
    })
}

/// The caller's live check-in.
#[utoipa::path(tag = "checkins", security(("bearer" = [])), responses(
    (status = 200, body = Checkin),
    (status = 401, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/checkins/current")]
pub async fn get_current(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<web::Json<Checkin>> {
    Ok(web::Json(live::current(&ctx, me.id).await?))
}

/// Leaves the live index now.
#[utoipa::path(tag = "checkins", security(("bearer" = [])), responses(
    (status = 204, description = "no longer live"),
    (status = 401, response = crate::http::error::Problem),
))]
#[delete("/v1/checkins/current")]
pub async fn delete_current(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<HttpResponse> {
    live::leave(&ctx, me.id).await.map_err(ServiceError::from)?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    //! Hostile input: whatever a client sends, parsing and validation answer without panicking,
    //! and whatever they accept is in range.
    use super::*;
    use crate::service::privacy::PrivacyPatch;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn field() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "lat",
            "lng",
            "accuracy_m",
            "recorded_at",
            "ttl_s",
            "client_id",
            "sharing",
            "precision",
            "hidden_from",
            "default_ttl_s",
            "paused_until",
            "notify_nearby",
            "notify_radius_m",
            "discoverable_by_email",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn checkin_bodies_never_panic_and_accepted_ones_are_in_range(
            fields in prop::collection::vec((field(), any_json()), 0..8),
            lat in -1000.0f64..1000.0,
            lng in -1000.0f64..1000.0,
        ) {
            let mut body = serde_json::Map::new();
            body.insert("lat".into(), json!(lat));
            body.insert("lng".into(), json!(lng));
            for (k, v) in fields {
                body.insert(k.into(), v);
            }
            let body = Value::Object(body);
            if let Ok(req) = serde_json::from_value::<CheckinRequest>(body.clone()) {
                let input = CheckinInput {
                    lat: req.lat,
                    lng: req.lng,
                    accuracy_m: req.accuracy_m,
                    recorded_at: req.recorded_at,
                    ttl_s: req.ttl_s,
                    client_id: req.client_id,
                };
                if crate::service::live::validate_input(&input).is_ok() {
                    prop_assert!((-90.0..=90.0).contains(&input.lat) && (-180.0..=180.0).contains(&input.lng));
                    prop_assert!(input.ttl_s.is_none_or(|t| t >= 60));
                    prop_assert!(input.accuracy_m.is_none_or(|a| a >= 0.0));
                }
            }
            let _ = serde_json::from_value::<PrivacyPatch>(body);
        }

        #[test]
        fn any_json_is_parsed_or_refused_without_panic(v in any_json()) {
            let _ = serde_json::from_value::<CheckinRequest>(v.clone());
            let _ = serde_json::from_value::<PrivacyPatch>(v.clone());
            let _ = crate::domain::zones::parse_geometry(&v);
            let _ = crate::domain::zones::parse_geometry(&json!({"type": "Polygon", "coordinates": v.clone()}));
            let _ = crate::domain::zones::parse_geometry(&json!({"type": "MultiPolygon", "coordinates": [v]}));
        }
    }
}
