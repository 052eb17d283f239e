//! Account values parsed at the edge: emails, display names, passwords, roles. Past the
//! handler, an invalid one cannot exist.

use super::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// A syntactically valid email as the user typed it (trimmed; case kept for display).
/// Emails compare by one rule everywhere: [`Email::normalised`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an email; the error names the field `email`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_email(raw).map(Self)
    }

    /// As typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form emails are compared, counted and hashed by.
    pub fn normalised(&self) -> String {
        normalise_email(&self.0)
    }

    /// sha256 of the normalised form: the contact-matching key.
    pub fn sha256(&self) -> Vec<u8> {
        email_sha256(&self.0)
    }
}

/// The one comparison rule of emails (trim, NFKC, then lower case), applied to any text (also
/// to login attempts that are not valid emails, so that their rate-limit bucket is stable).
/// PostgreSQL never compares emails itself: lookups go by [`email_sha256`] of this form.
pub fn normalise_email(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

/// sha256(normalised email) — the contact-matching key.
pub fn email_sha256(raw: &str) -> Vec<u8> {
    Sha256::digest(normalise_email(raw).as_bytes()).to_vec()
}

/// A display name: visible text of 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a name; the error names the field `display_name`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_display_name(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The pattern the spec states for emails: ASCII, `local@domain.tld` (at most five labels) with
/// the label rules of [`Email::parse`] (which also takes Unicode letters and longer domains: the
/// spec promises less than it accepts, never more). Every match of at most 254 characters parses (a property test checks it).
pub const EMAIL_PATTERN: &str =
    "^[!-?A-~]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.){1,4}[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";

/// The pattern the spec states for visible text (display names, headlines, companies, titles):
/// characters of the Basic Multilingual Plane but controls, format characters (Cf), surrogates
/// and private use, with at least one letter or digit of a common script. Every match of at most
/// 100 characters passes [`visible_text`] (a property test checks it); the server takes more
/// (any visible text, other planes included), never less.
pub const VISIBLE_TEXT_PATTERN: &str = concat!(
    "^[\\u0020-\\u007e\\u00a0-\\u00ac\\u00ae-\\u05ff\\u0606-\\u061b\\u061d-\\u06dc\\u06de-\\u070e\\u0710-\\u088f",
    "\\u0892-\\u08e1\\u08e3-\\u180d\\u180f-\\u200a\\u2010-\\u2029\\u202f-\\u205f\\u2070-\\ud7ff\\uf900-\\ufefe",
    "\\uff00-\\ufff8\\ufffc-\\ufffd]*",
    "[0-9A-Za-z\\u00c0-\\u024f\\u0391-\\u03a1\\u03a3-\\u03a9\\u03b1-\\u03c9\\u0410-\\u044f\\u05d0-\\u05ea",
    "\\u0621-\\u063a\\u0641-\\u064a\\u0905-\\u0939\\u3041-\\u3096\\u30a1-\\u30fa\\u4e00-\\u9fff\\uac00-\\ud7a3]",
    "[\\u0020-\\u007e\\u00a0-\\u00ac\\u00ae-\\u05ff\\u0606-\\u061b\\u061d-\\u06dc\\u06de-\\u070e\\u0710-\\u088f",
    "\\u0892-\\u08e1\\u08e3-\\u180d\\u180f-\\u200a\\u2010-\\u2029\\u202f-\\u205f\\u2070-\\ud7ff\\uf900-\\ufefe",
    "\\uff00-\\ufff8\\ufffc-\\ufffd]*$",
);

/// A syntactically valid email, trimmed (case is kept; uniqueness ignores it).
fn parse_email(raw: &str) -> Result<String, FieldError> {
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
fn parse_display_name(raw: &str) -> Result<String, FieldError> {
    let n = raw.trim();
    let count = n.chars().count();
    if count == 0 || count > 100 {
        return Err(FieldError::new("display_name", "must be 1 to 100 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(FieldError::new("display_name", "must not contain control characters"));
    }
    visible_text("display_name", n)?;
    Ok(n.to_string())
}

/// Text people see as it is: no format characters (Unicode category Cf: bidi controls such as
/// U+202E, zero-width characters, the BOM) and at least one visible character (a letter, digit,
/// punctuation or symbol).
pub fn visible_text(field: &str, text: &str) -> Result<(), FieldError> {
    use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};
    if text.chars().any(|c| c.general_category() == GeneralCategory::Format) {
        return Err(FieldError::new(
            field,
            "must not contain invisible format characters (bidi controls, zero-width characters)",
        ));
    }
    let visible = text.chars().any(|c| {
        matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter
                | GeneralCategoryGroup::Number
                | GeneralCategoryGroup::Punctuation
                | GeneralCategoryGroup::Symbol
        )
    });
    if !visible {
        return Err(FieldError::new(field, "must contain a visible character"));
    }
    Ok(())
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

    /// Strings matching a spec pattern (its anchors dropped: proptest generates whole matches).
    fn matching(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let inner = pattern.trim_start_matches('^').trim_end_matches('$');
        proptest::string::string_regex(inner).expect("a pattern proptest can generate from")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The spec promises no email the server refuses.
        #[test]
        fn every_email_the_spec_allows_parses(e in matching(EMAIL_PATTERN)) {
            prop_assume!(e.chars().count() <= 254);
            prop_assert!(parse_email(&e).is_ok(), "{e:?}: {:?}", parse_email(&e));
        }

        /// The spec promises no display name the server refuses.
        #[test]
        fn every_name_the_spec_allows_parses(n in matching(VISIBLE_TEXT_PATTERN)) {
            prop_assume!(n.chars().count() <= 100);
            prop_assert!(parse_display_name(&n).is_ok(), "{n:?}: {:?}", parse_display_name(&n));
        }
    }

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
        for invisible in ["\u{202E}evil", "a\u{200B}b", "\u{FEFF}", "\u{200D}\u{200D}", "\u{0301}"] {
            assert!(parse_display_name(invisible).is_err(), "{invisible:?}");
        }
        assert_eq!(parse_display_name("Zoë Ø 李").as_deref(), Ok("Zoë Ø 李"));
    }

    proptest! {
        #[test]
        fn email_parser_never_panics(s in ".{0,300}") {
            let _ = parse_email(&s);
            let _ = parse_display_name(&s);
        }
    }
}
