//! Account values checked at the edge: emails, display names, passwords.

use crate::error::FieldError;

/// A syntactically valid email, trimmed (case is kept; uniqueness ignores it).
pub fn parse_email(raw: &str) -> Result<String, FieldError> {
    let e = raw.trim();
    let bad = |m: &str| Err(FieldError::new("email", m));
    if e.is_empty() || e.len() > 254 {
        return bad("must be 1 to 254 characters");
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return bad("must look like name@example.com");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return bad("must look like name@example.com");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return bad("must have a domain like example.com");
    }
    Ok(e.to_string())
}

/// A display name: 1 to 100 characters after trimming, no control characters.
pub fn parse_display_name(raw: &str) -> Result<String, FieldError> {
    let n = raw.trim();
    let count = n.chars().count();
    if count == 0 || count > 100 {
        return Err(FieldError::new("display_name", "must be 1 to 100 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(FieldError::new("display_name", "must not contain control characters"));
    }
    Ok(n.to_string())
}

/// Passwords: at least 10 characters, at most 1,024 bytes (bounds the hashing work).
pub fn check_password(pw: &str) -> Result<(), FieldError> {
    if pw.chars().count() < 10 {
        return Err(FieldError::new("password", "must be at least 10 characters"));
    }
    if pw.len() > 1024 {
        return Err(FieldError::new("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(parse_email("  Ann@Example.com ").as_deref(), Ok("Ann@Example.com"));
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a b@x.com",
            "ann@localhost",
            "ann@x..com",
            "ann@-x.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_and_names() {
        assert!(check_password("123456789").is_err());
        assert!(check_password("1234567890").is_ok());
        assert!(check_password(&"x".repeat(2000)).is_err());
        assert!(parse_display_name("   ").is_err());
        assert!(parse_display_name("a\u{0007}").is_err());
        assert_eq!(parse_display_name(" Alex ").as_deref(), Ok("Alex"));
    }

    proptest! {
        #[test]
        fn email_parser_never_panics(s in ".{0,300}") {
            let _ = parse_email(&s);
            let _ = parse_display_name(&s);
        }
    }
}
