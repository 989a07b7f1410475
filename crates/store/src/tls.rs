//! How Roster's connections to PostgreSQL use TLS.
//!
//! The state and `roster serve`'s job queue both connect with sqlx, which reads `sslmode`
//! as libpq does (`require` checks no certificate); Roster reads the URL here and gives
//! every connection this rule:
//!
//! - `require`, `verify-ca`, `verify-full`: every connection is encrypted and the server's
//!   certificate is checked: its chain (to `sslrootcert` / `PGSSLROOTCERT`, else to the
//!   operating system's roots) and its host name. A tool that holds the keys to every
//!   account of a company does not talk to a database it has not recognised.
//! - `disable`, `allow`, `prefer` (the default): plaintext. An encryption that
//!   checks nothing guards against no one who can intercept, and it costs sqlx's client two
//!   delayed-ACK stalls per connection (it does not set `TCP_NODELAY`), some 0.1 s a
//!   connection, measured on loopback.

use std::path::PathBuf;

use crate::StoreError;

/// What a state URL (with libpq's `PGSSLMODE` / `PGSSLROOTCERT` beside it) asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    /// Every connection encrypted and the server's certificate checked.
    pub verify: bool,
    /// The PEM file of the CA that signed the server's certificate, if not a public one.
    pub root_cert: Option<PathBuf>,
}

/// The names sqlx (and libpq) accept for the two settings in a URL's query.
const MODE_KEYS: &[&str] = &["sslmode", "ssl-mode"];
const ROOT_KEYS: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];

impl PgTls {
    /// Reads the settings from the URL, else from the environment as libpq does.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        let bad = |why: String| StoreError::BadTls {
            url: crate::redact_url(url),
            why,
        };
        let parsed =
            url::Url::parse(url).map_err(|e| bad(format!("the URL does not parse: {e}")))?;
        let find = |keys: &[&str]| {
            parsed
                .query_pairs()
                .find(|(k, _)| keys.contains(&k.as_ref()))
                .map(|(_, v)| v.into_owned())
        };
        let mode = find(MODE_KEYS).or_else(|| std::env::var("PGSSLMODE").ok());
        let verify = match mode.as_deref().unwrap_or("prefer") {
            "disable" | "allow" | "prefer" => false,
            "require" | "verify-ca" | "verify-full" => true,
            other => {
                return Err(bad(format!(
                    "sslmode={other} is not a mode Roster knows; use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        };
        let root_cert = find(ROOT_KEYS)
            .or_else(|| std::env::var("PGSSLROOTCERT").ok())
            .filter(|p| !p.is_empty() && p != "system")
            .map(PathBuf::from);
        if let Some(path) = &root_cert {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                bad(format!(
                    "the CA certificate {} cannot be read ({e}); give sslrootcert (or PGSSLROOTCERT) the PEM file of the CA that signed the server's certificate",
                    path.display()
                ))
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(bad(format!(
                    "{} holds no PEM certificate; give sslrootcert (or PGSSLROOTCERT) the PEM file of the CA that signed the server's certificate",
                    path.display()
                )));
            }
        }
        Ok(Self { verify, root_cert })
    }

    /// The URL for sqlx: when TLS is asked for, `verify-full` (sqlx's `require` and
    /// `verify-ca` would skip the host name or the whole certificate); else `disable`.
    pub fn sqlx_url(&self, url: &str) -> String {
        let mode = if self.verify {
            "verify-full"
        } else {
            "disable"
        };
        rewrite_query(url, |pairs| {
            pairs.retain(|(k, _)| !MODE_KEYS.contains(&k.as_str()));
            pairs.push(("sslmode".into(), mode.into()));
        })
    }

    /// What to check besides the usual after a connection failed: the certificate when
    /// TLS was asked for, else whether the server takes TLS only.
    pub fn hint(&self) -> &'static str {
        if self.verify {
            ", that it speaks TLS and that its certificate names the URL's host and is signed by a public CA or by the one in sslrootcert / PGSSLROOTCERT"
        } else {
            "; if the server takes TLS only, add sslmode=verify-full (and sslrootcert=CA.pem for a private CA) to the URL"
        }
    }
}

/// `url` with its query's pairs as `edit` leaves them (no `?` when none are left); an
/// unparseable URL comes back as it was, for the client to refuse with its own words.
pub(crate) fn rewrite_query(url: &str, edit: impl FnOnce(&mut Vec<(String, String)>)) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    let mut pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    edit(&mut pairs);
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asking_mode_becomes_a_full_check_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!(
                "postgres://roster:pw@db.example:5432/roster?application_name=r&sslmode={mode}&sslrootcert={}",
                ca.display()
            );
            let tls = PgTls::of(&url).unwrap();
            assert!(tls.verify, "{mode}");
            assert_eq!(tls.root_cert.as_deref(), Some(ca.as_path()));
            let sqlx = tls.sqlx_url(&url);
            assert!(sqlx.ends_with("sslmode=verify-full"), "{sqlx}");
            assert!(sqlx.contains("application_name=r"), "{sqlx}");
        }
        for url in [
            "postgres://db.example/roster?sslmode=disable",
            "postgres://db.example/roster?sslmode=prefer",
            "postgres://db.example/roster",
        ] {
            let tls = PgTls::of(url).unwrap();
            assert!(!tls.verify);
            assert_eq!(
                tls.sqlx_url(url),
                "postgres://db.example/roster?sslmode=disable"
            );
        }
    }

    #[test]
    fn a_password_in_the_query_is_hidden_too() {
        let shown = crate::redact_url(
            "postgres://roster:one@db.example/roster?password=two&sslmode=require",
        );
        assert!(!shown.contains("one") && !shown.contains("two"), "{shown}");
        assert!(
            shown.contains("password=***") && shown.contains("sslmode=require"),
            "{shown}"
        );
    }

    #[test]
    fn a_database_url_debugs_without_its_password() {
        let url: crate::DatabaseUrl = "postgres://roster:hunter2@db/roster?password=hunter3"
            .parse()
            .unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert_eq!(
            &*url,
            "postgres://roster:hunter2@db/roster?password=hunter3"
        );
    }

    #[test]
    fn an_unknown_mode_or_an_unreadable_ca_says_what_to_give() {
        let err = PgTls::of("postgres://u:secret@db/roster?sslmode=strict").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sslmode=strict") && text.contains("verify-full"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        let err = PgTls::of("postgres://db/roster?sslmode=require&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/ca.pem") && err.contains("PEM file"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let err = PgTls::of(&format!(
            "postgres://db/roster?sslrootcert={}",
            empty.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }
}
