//! Accounts and tokens: registration, login, refresh rotation, JWT verification, roles, limits.

use crate::helpers::*;
use base64::Engine;
use serde_json::json;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn register_login_and_me() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "Ann@Example.com", "password": PW, "display_name": "Ann"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["user"]["role"], "user");
    assert_eq!(v["user"]["email"], "Ann@Example.com");
    let token = v["access_token"].as_str().expect("token");
    let me = app.get("/v1/me", Some(token)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["display_name"], "Ann");
    // login is case-insensitive on the email
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ann@EXAMPLE.com", "password": PW}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // the stored hash is argon2id, never the password
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PW));
}

#[tokio::test]
async fn duplicate_email_is_409_case_insensitively() {
    let app = spawn_app().await;
    app.register("bob").await;
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "BOB@example.COM", "password": PW, "display_name": "B"}),
        )
        .await;
    r.assert_problem(409, "email_taken");
}

#[tokio::test]
async fn registration_validates_fields() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "display_name": ""}),
        )
        .await;
    let v = r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"email") && fields.contains(&"password") && fields.contains(&"display_name"),
        "{v}"
    );
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "ok@example.com", "password": "123456789", "display_name": "x"}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn login_does_not_reveal_whether_an_email_exists() {
    let app = spawn_app().await;
    app.register("carol").await;
    let wrong_pw = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "carol@example.com", "password": "wrong password!"}),
        )
        .await;
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await;
    wrong_pw.assert_problem(401, "unauthorized");
    unknown.assert_problem(401, "unauthorized");
    assert_eq!(
        wrong_pw.text, unknown.text,
        "same body for unknown email and wrong password"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let u = app.register("dave").await;
    let r1 = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh}))
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    let second = r1.json()["refresh_token"].as_str().expect("rt").to_string();
    assert_ne!(second, u.refresh);
    assert!(app.get("/v1/me", r1.json()["access_token"].as_str()).await.status == 200);
    // the first token is spent: presenting it again is a reuse and kills the family
    app.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh}))
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/auth/refresh", None, json!({"refresh_token": second}))
        .await
        .assert_problem(401, "unauthorized");
    // the token is stored only as a hash
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM refresh_tokens WHERE token_hash = convert_to($1, 'UTF8')")
        .bind(&second)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let app = spawn_app().await;
    let u = app.register("erin").await;
    let r = app
        .post("/v1/auth/logout", None, json!({"refresh_token": u.refresh}))
        .await;
    assert_eq!(r.status, 204);
    app.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh}))
        .await
        .assert_problem(401, "unauthorized");
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[tokio::test]
async fn forged_tokens_are_401() {
    let app = spawn_app().await;
    let u = app.register("frank").await;
    let parts: Vec<&str> = u.token.split('.').collect();
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("b64"),
    )
    .expect("json");
    // alg: none
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#), parts[1]);
    // tampered payload with the original signature
    let mut p2 = payload.clone();
    p2["role"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&p2).expect("json")),
        parts[2]
    );
    // a changed algorithm header
    let hs512 = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"HS512","typ":"JWT","kid":"k1"}"#),
        parts[1],
        parts[2]
    );
    for (what, token) in [
        ("none", none),
        ("tampered", tampered),
        ("alg switch", hs512),
        ("garbage", "abc".into()),
    ] {
        let r = app.get("/v1/me", Some(&token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_problem(401, "unauthorized");
    }
    app.get("/v1/me", None).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn expired_and_wrong_audience_tokens_are_401() {
    let app = spawn_app().await;
    let u = app.register("gina").await;
    let keys = &app.ctx.tokens;
    let now = jsonwebtoken::get_current_timestamp();
    let base = |exp: u64, iss: &str, aud: &str| hereabouts::service::auth::Claims {
        sub: u.uuid(),
        role: hereabouts::domain::account::Role::User,
        iat: now - 3600,
        exp,
        iss: iss.into(),
        aud: aud.into(),
        sid: None,
    };
    let good = keys
        .sign(&base(now + 60, "hereabouts", "hereabouts-app"))
        .expect("sign");
    assert_eq!(app.get("/v1/me", Some(&good)).await.status, 200);
    for (what, c) in [
        ("expired", base(now - 120, "hereabouts", "hereabouts-app")),
        ("wrong audience", base(now + 60, "hereabouts", "someone-else")),
        ("wrong issuer", base(now + 60, "evil", "hereabouts-app")),
    ] {
        let t = keys.sign(&c).expect("sign");
        assert_eq!(app.get("/v1/me", Some(&t)).await.status, 401, "{what}");
    }
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_valid() {
    // an app signing with k1, then one signing with k2 that still accepts k1
    let app = spawn_app().await;
    let u = app.register("hal").await;
    let s = test_settings(
        &app.db_name,
        &app.prefix,
        &[
            ("HEREABOUTS_JWT_KID", "k2"),
            ("HEREABOUTS_JWT_SECRET", "a-brand-new-secret-for-key-two-0000000"),
            (
                "HEREABOUTS_JWT_PREVIOUS_SECRETS",
                "k1=test-secret-test-secret-test-secret-0001",
            ),
        ],
    );
    let keys = hereabouts::service::auth::TokenKeys::from_settings(&s).expect("keys");
    assert!(
        keys.verify(&u.token).is_some(),
        "a k1 token verifies after rotation to k2"
    );
    let t2 = keys
        .issue(u.uuid(), hereabouts::domain::account::Role::User, uuid::Uuid::new_v4())
        .expect("issue");
    assert!(
        app.ctx.tokens.verify(&t2).is_none(),
        "a server without k2 rejects k2 tokens"
    );
}

#[tokio::test]
async fn es256_keys_sign_and_verify() {
    let dir = std::env::temp_dir().join(format!("hb-es-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("k.pem");
    let public = dir.join("k.pub.pem");
    // a P-256 key made here: 32 random bytes are a valid scalar but with negligible odds
    let secret = std::iter::repeat_with(|| {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        p256::SecretKey::from_slice(&bytes)
    })
    .take(8)
    .find_map(Result::ok)
    .expect("a P-256 scalar");
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    std::fs::write(&key, pem.as_bytes()).expect("write key");
    let public_pem = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public PEM");
    std::fs::write(&public, public_pem).expect("write public key");
    // PKCS#8 private key for jsonwebtoken
    let s = test_settings(
        "x",
        "x",
        &[
            ("HEREABOUTS_JWT_ALGORITHM", "ES256"),
            ("HEREABOUTS_JWT_PRIVATE_KEY_FILE", key.to_str().expect("path")),
            ("HEREABOUTS_JWT_PUBLIC_KEYS", &format!("k1={}", public.display())),
        ],
    );
    let keys = hereabouts::service::auth::TokenKeys::from_settings(&s).expect("ES256 keys load");
    let id = uuid::Uuid::new_v4();
    let t = keys
        .issue(id, hereabouts::domain::account::Role::User, uuid::Uuid::new_v4())
        .expect("sign");
    assert!(t.starts_with(&b64(br#"{"typ":"JWT","alg":"ES256""#)[..10]) || t.contains('.'));
    assert_eq!(keys.verify(&t).map(|c| c.sub), Some(id));
}

#[tokio::test]
async fn admin_grant_through_the_cli_and_revocation_takes_effect_at_once() {
    let app = spawn_app().await;
    let u = app.register("ivy").await;
    let s = test_settings(&app.db_name, &app.prefix, &[]);
    let bin = env!("CARGO_BIN_EXE_hereabouts");
    let out = std::process::Command::new(bin)
        .args(["admin", "grant", "IVY@example.com"])
        .env("HEREABOUTS_DATABASE_URL", s.database_url())
        .env("HEREABOUTS_JWT_SECRET", "test-secret-test-secret-test-secret-0001")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = app
        .post("/v1/auth/login", None, json!({"email": u.email, "password": PW}))
        .await;
    assert_eq!(r.json()["user"]["role"], "admin");
    let admin_token = r.json()["access_token"].as_str().expect("t").to_string();
    assert_eq!(app.get("/v1/admin/policy", Some(&admin_token)).await.status, 200);
    let out = std::process::Command::new(bin)
        .args(["admin", "revoke", "ivy@example.com"])
        .env("HEREABOUTS_DATABASE_URL", s.database_url())
        .env("HEREABOUTS_JWT_SECRET", "test-secret-test-secret-test-secret-0001")
        .output()
        .expect("run");
    assert!(out.status.success());
    // the token still says admin, the database no longer does
    app.get("/v1/admin/policy", Some(&admin_token))
        .await
        .assert_problem(403, "forbidden");
    app.get("/v1/admin/policy", u.t())
        .await
        .assert_problem(403, "forbidden");
    // both are in the audit log, by the operator, about ivy
    let rows: Vec<(String, Option<uuid::Uuid>, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT action, actor_user_id, target_user_id FROM audit_log WHERE action LIKE 'admin.%' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(
        rows,
        vec![
            ("admin.grant".to_string(), None, Some(u.uuid())),
            ("admin.revoke".to_string(), None, Some(u.uuid()))
        ]
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_email() {
    let app = spawn_app_with(&[("HEREABOUTS_RATE_LOGIN_PER_EMAIL_PER_MIN", "3")]).await;
    app.register("jay").await;
    for _ in 0..3 {
        let r = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "jay@example.com", "password": "wrong password!"}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "JAY@example.com", "password": PW}),
        )
        .await;
    r.assert_problem(429, "rate_limited");
    let retry: u64 = r.header("retry-after").expect("retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn registration_is_rate_limited_per_ip() {
    let app = spawn_app_with(&[("HEREABOUTS_RATE_REGISTER_PER_IP_PER_MIN", "2")]).await;
    app.register("k1").await;
    app.register("k2").await;
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "k3@example.com", "password": PW, "display_name": "k3"}),
        )
        .await;
    r.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn patch_and_delete_me() {
    let app = spawn_app().await;
    let u = app.register("lee").await;
    let r = app.patch("/v1/me", u.t(), json!({"display_name": "  Lee Q  "})).await;
    assert_eq!(r.json()["display_name"], "Lee Q");
    app.patch("/v1/me", u.t(), json!({"display_name": ""}))
        .await
        .assert_problem(422, "validation_failed");
    let r = app.delete("/v1/me", u.t()).await;
    assert_eq!(r.status, 204);
    app.get("/v1/me", u.t()).await.assert_problem(401, "unauthorized");
    app.post("/v1/auth/login", None, json!({"email": u.email, "password": PW}))
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/auth/refresh", None, json!({"refresh_token": u.refresh}))
        .await
        .assert_problem(401, "unauthorized");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(n, 0, "tokens go with the account");
}
