//! The contract around the handlers: extractor errors name their field, CORS for configured
//! origins only, the reference page works offline, the spec says what the server enforces.

use crate::helpers::{Resp, TestApp, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

fn fields(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors[]: {v}"))
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect()
}

async fn raw(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    let mut rb = app.client.request(method, format!("{}{path}", app.address));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.header("content-type", "application/json").body(b.to_string());
    }
    let r = rb.send().await.expect("request sent");
    Resp {
        status: r.status(),
        headers: r.headers().clone(),
        text: r.text().await.expect("body"),
    }
}

#[tokio::test]
async fn wrong_types_and_missing_fields_name_the_field() {
    let app = spawn_app().await;
    let u = app.register("typo").await;
    let cases = [
        (
            app.post("/v1/checkins", u.t(), json!({"lat": "north", "lng": 2.0}))
                .await,
            "lat",
        ),
        (app.post("/v1/checkins", u.t(), json!({"lat": 48.0})).await, "lng"),
        (
            app.patch("/v1/me/privacy", u.t(), json!({"home": {"lat": "x", "lng": 1.0}}))
                .await,
            "home.lat",
        ),
        (
            app.patch("/v1/me/privacy", u.t(), json!({"precision": "street"})).await,
            "precision",
        ),
        (app.patch("/v1/me", u.t(), json!(["display_name"])).await, "body"),
        (app.get("/v1/nearby?radius_m=abc", u.t()).await, "radius_m"),
        (
            app.get("/v1/connections/requests?direction=sideways", u.t()).await,
            "direction",
        ),
        (app.get("/v1/connections?cursor=not-a-cursor", u.t()).await, "cursor"),
        (app.get("/v1/notifications?unread=maybe", u.t()).await, "unread"),
    ];
    for (resp, field) in cases {
        let v = resp.assert_problem(400, "bad_request");
        assert_eq!(fields(&v), [field], "{v}");
    }
    let broken = raw(
        &app,
        Method::POST,
        "/v1/checkins",
        &[("authorization", &format!("Bearer {}", u.token))],
        Some("{\"lat\": 4"),
    )
    .await;
    assert_eq!(fields(&broken.assert_problem(400, "bad_request")), ["body"]);
    // any cursor of the stated shape is a position, also one before year 1 (it made a 500)
    for cursor in [
        "-4dxtzefrpEsA1VfJ04fy0Krj_S8NY8O",
        "________________________________",
        "",
    ] {
        let r = app.get(&format!("/v1/blocks?cursor={cursor}"), u.t()).await;
        assert_eq!(r.status, 200, "{cursor}: {}", r.text);
    }
    // out of range is still a 422 naming the same kind of field
    let v = app
        .get("/v1/nearby?radius_m=10", u.t())
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(fields(&v), ["radius_m"]);
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let app = spawn_app().await;
    let origin = [("origin", "https://app.example.com")];
    let r = raw(&app, Method::GET, "/healthz", &origin, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
    ];
    let r = raw(&app, Method::OPTIONS, "/v1/me", &preflight, None).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    r.assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn cors_answers_the_configured_origins_only() {
    let app = spawn_app_with(&[(
        "HEREABOUTS_CORS_ALLOWED_ORIGINS",
        "https://app.example.com,http://localhost:5173",
    )])
    .await;
    let u = app.register("browser").await;
    let preflight = |origin| {
        [
            ("origin", origin),
            ("access-control-request-method", "PATCH"),
            ("access-control-request-headers", "authorization, content-type"),
        ]
    };
    let r = raw(
        &app,
        Method::OPTIONS,
        "/v1/me/privacy",
        &preflight("https://app.example.com"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("PATCH"))
    );
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(
        r.header("access-control-allow-credentials"),
        None,
        "bearer tokens, no cookies"
    );

    // the actual request: the page may read the answer, errors included
    let auth = format!("Bearer {}", u.token);
    let r = raw(
        &app,
        Method::GET,
        "/v1/me",
        &[("origin", "http://localhost:5173"), ("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:5173")
    );
    assert!(
        r.header("access-control-expose-headers")
            .is_some_and(|h| h.to_lowercase().contains("retry-after"))
    );
    let r = raw(
        &app,
        Method::GET,
        "/v1/me",
        &[("origin", "https://app.example.com")],
        None,
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    r.assert_problem(401, "unauthorized");

    // another origin: no CORS headers (its browser refuses the answer), a refused preflight
    let r = raw(
        &app,
        Method::GET,
        "/v1/me",
        &[("origin", "https://evil.example"), ("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = raw(
        &app,
        Method::OPTIONS,
        "/v1/me/privacy",
        &preflight("https://evil.example"),
        None,
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_reference_page_works_offline_with_try_it_and_a_token_field() {
    let app = spawn_app().await;
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self';") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        !page.text.contains("https://") && !page.text.contains("http://"),
        "nothing from elsewhere"
    );
    let mut scripts = 0;
    for src in page.text.split('"').filter(|p| p.starts_with("/docs/")) {
        let file = app.get(src, None).await;
        assert_eq!(file.status, 200, "{src}");
        scripts += usize::from(src.ends_with(".js"));
    }
    assert!(scripts >= 2, "Swagger UI and its set-up");
    let setup = app.get("/docs/docs.js", None).await.text;
    assert!(
        setup.contains("tryItOutEnabled: true")
            && setup.contains("/openapi.json")
            && setup.contains("validatorUrl: null")
    );
    assert_eq!(app.get("/docs/../Cargo.toml", None).await.status, 404);

    // what the page renders: a server to try against, the bearer scheme, the error codes
    let spec = app.get("/openapi.json", None).await.json();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["servers"][0]["url"], "/");
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let description = spec["info"]["description"].as_str().expect("description");
    for code in ["validation_failed", "sharing_disabled", "rate_limited", "unavailable"] {
        assert!(description.contains(&format!("| `{code}` |")), "{code}");
    }
    assert_eq!(spec["paths"]["/v1/auth/login"]["post"]["security"], json!([]));
    assert_eq!(spec["paths"]["/v1/me"]["get"]["security"], json!([{"bearer": []}]));
    let link = &spec["paths"]["/v1/trips"]["post"]["responses"]["201"]["links"]["get_trip"];
    assert_eq!(link["parameters"]["id"], "$response.body#/id", "{link}");
}
