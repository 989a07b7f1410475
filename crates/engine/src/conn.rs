//! Where an app instance is and how Roster signs in to it, whoever gives the values: the
//! command line (these structs are its flags, with the `clap` feature), the environment, a
//! configuration file or the service's instance table.

use std::path::PathBuf;
use std::time::Duration;

/// Where the Marketo instance is and how hard Roster may push it. Flags win over the
/// environment, which wins over the configuration file.
#[derive(Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct MarketoConn {
    /// With the service's configuration as --config: the instance to connect to
    /// (`marketo.prod`), with the service's own settings; the only one of its app when
    /// there is one.
    #[cfg_attr(
        feature = "clap",
        arg(long = "instance", env = "ROSTER_INSTANCE", value_name = "INSTANCE")
    )]
    pub instance: Option<String>,
    /// The instance's REST base URL, e.g. https://123-ABC-456.mktorest.com.
    #[cfg_attr(
        feature = "clap",
        arg(long = "url", env = "ROSTER_MARKETO_URL", value_name = "URL")
    )]
    pub url: Option<String>,
    /// The custom service's client id.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_MARKETO_CLIENT_ID", value_name = "ID")
    )]
    pub client_id: Option<String>,
    /// The custom service's client secret (prefer the environment variable: flags show in `ps`).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MARKETO_CLIENT_SECRET",
            hide_env_values = true,
            value_name = "SECRET"
        )
    )]
    pub client_secret: Option<String>,
    /// Calls in flight at once [default: 10].
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub max_in_flight: Option<usize>,
    /// Calls per --rate-window [default: 100].
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub rate_limit: Option<u32>,
    /// The rate limit's window [default: 20s].
    #[cfg_attr(feature = "clap", arg(long, value_parser = parse_duration, value_name = "DURATION"))]
    pub rate_window: Option<Duration>,
    /// The subscription's daily call quota [default: 50000].
    #[cfg_attr(feature = "clap", arg(long, value_name = "CALLS"))]
    pub daily_quota: Option<u64>,
    /// Retries of a failed call (transient errors, 604/606/608/611/615, 5xx) [default: 6].
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_MARKETO_MAX_RETRIES", value_name = "N")
    )]
    pub max_retries: Option<usize>,
    /// Set by a caller that configures a subscription on Adobe Identity itself (the demo);
    /// otherwise `identity = "adobe"` in `[marketo]` or the environment says so.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub ims: Option<ImsSettings>,
}

/// A Marketo subscription on Adobe Identity: the organization, the product profiles that
/// give the subscription, and how people new to the organization are created.
#[derive(Clone, Debug, Default)]
pub struct ImsSettings {
    pub adobe: AdobeConn,
    pub profiles: Vec<String>,
    /// `federatedID` (default), `enterpriseID` or `adobeID`.
    pub identity_type: Option<String>,
    pub country: Option<String>,
    /// How long Marketo may take to show someone given the profile before plans say they
    /// have not appeared [default: 1h].
    pub sync_timeout: Option<Duration>,
}

/// Where the Magento store is and how Roster signs in: an admin account (with a TOTP secret
/// where the store requires two-factor authentication), or an integration's token or OAuth
/// 1.0a values. Flags win over the environment, which wins over the `[magento]` section of
/// the configuration file.
#[derive(Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct MagentoConn {
    /// With the service's configuration as --config: the instance to connect to
    /// (`marketo.prod`), with the service's own settings; the only one of its app when
    /// there is one.
    #[cfg_attr(
        feature = "clap",
        arg(long = "instance", env = "ROSTER_INSTANCE", value_name = "INSTANCE")
    )]
    pub instance: Option<String>,
    /// The store's base URL (the REST API is under /rest), e.g. https://shop.example.com.
    #[cfg_attr(
        feature = "clap",
        arg(long = "url", env = "ROSTER_MAGENTO_URL", value_name = "URL")
    )]
    pub url: Option<String>,
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_MAGENTO_USERNAME", value_name = "USER")
    )]
    pub username: Option<String>,
    /// The admin password (prefer the environment variable: flags show in `ps`).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MAGENTO_PASSWORD",
            hide_env_values = true,
            value_name = "PASSWORD"
        )
    )]
    pub password: Option<String>,
    /// Store code for every call; `all` is the admin scope that sees every website.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "all", value_name = "CODE")
    )]
    pub scope: String,
    /// The admin's Google Authenticator secret (base32), for stores with two-factor
    /// authentication (prefer the environment variable or --totp-secret-file).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MAGENTO_TOTP_SECRET",
            hide_env_values = true,
            value_name = "BASE32"
        )
    )]
    pub totp_secret: Option<String>,
    /// A file holding that secret.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_MAGENTO_TOTP_SECRET_FILE", value_name = "FILE")
    )]
    pub totp_secret_file: Option<PathBuf>,
    /// An integration's access token, used as a bearer token instead of an admin sign-in.
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MAGENTO_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )
    )]
    pub token: Option<String>,
    /// An integration's consumer key: with the next three, every call is signed with OAuth 1.0a.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_MAGENTO_CONSUMER_KEY", value_name = "KEY")
    )]
    pub consumer_key: Option<String>,
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MAGENTO_CONSUMER_SECRET",
            hide_env_values = true,
            value_name = "SECRET"
        )
    )]
    pub consumer_secret: Option<String>,
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MAGENTO_ACCESS_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )
    )]
    pub access_token: Option<String>,
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_MAGENTO_ACCESS_TOKEN_SECRET",
            hide_env_values = true,
            value_name = "SECRET"
        )
    )]
    pub access_token_secret: Option<String>,
}

#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Confirm {
    /// Do it. Without this flag the command only shows what it would do.
    #[cfg_attr(feature = "clap", arg(long))]
    pub yes: bool,
    /// Why, kept in the tombstone.
    #[cfg_attr(feature = "clap", arg(long))]
    pub reason: Option<String>,
    /// Who asked for it, kept in the tombstone [default: $USER].
    #[cfg_attr(feature = "clap", arg(long, env = "ROSTER_ACTOR", value_name = "NAME"))]
    pub by: Option<String>,
}

/// Parses a duration as humantime reads one (`500ms`, `20s`, `2m`, `1h`, `90d`, `1h 30m`),
/// or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{s:?} is out of range"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); use e.g. 500ms, 20s, 2m, 1h or 90d"))
}

/// Shows which values are set, never a secret's value.
impl std::fmt::Debug for MarketoConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketoConn")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("max_in_flight", &self.max_in_flight)
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("daily_quota", &self.daily_quota)
            .field("max_retries", &self.max_retries)
            .field("ims", &self.ims)
            .finish()
    }
}

impl std::fmt::Debug for MagentoConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagentoConn")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("scope", &self.scope)
            .field("totp_secret", &redacted(&self.totp_secret))
            .field("totp_secret_file", &self.totp_secret_file)
            .field("token", &redacted(&self.token))
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &redacted(&self.consumer_secret))
            .field("access_token", &redacted(&self.access_token))
            .field("access_token_secret", &redacted(&self.access_token_secret))
            .finish()
    }
}

/// Where the Adobe organization is (an Admin Console's User Management API) and the OAuth
/// Server-to-Server credential Roster signs in with. Flags win over the environment, which
/// wins over the `[adobe]` section of the configuration file.
#[derive(Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AdobeConn {
    /// UMAPI's host [default: https://usermanagement.adobe.io].
    #[cfg_attr(
        feature = "clap",
        arg(long = "url", env = "ROSTER_ADOBE_URL", value_name = "URL")
    )]
    pub url: Option<String>,
    /// IMS's host, where the token is asked for [default: https://ims-na1.adobelogin.com].
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_ADOBE_IMS_URL", value_name = "URL")
    )]
    pub ims_url: Option<String>,
    /// The organization, `...@AdobeOrg`.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_ADOBE_ORG_ID", value_name = "ORG")
    )]
    pub org_id: Option<String>,
    /// The OAuth Server-to-Server credential's client id (also its API key).
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "ROSTER_ADOBE_CLIENT_ID", value_name = "ID")
    )]
    pub client_id: Option<String>,
    /// Its client secret (prefer the environment variable: flags show in `ps`).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "ROSTER_ADOBE_CLIENT_SECRET",
            hide_env_values = true,
            value_name = "SECRET"
        )
    )]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for AdobeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdobeConn")
            .field("url", &self.url)
            .field("ims_url", &self.ims_url)
            .field("org_id", &self.org_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .finish()
    }
}

fn redacted(value: &Option<String>) -> Option<&'static str> {
    value.as_ref().map(|_| "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let m = MarketoConn {
            client_secret: Some("marketo-secret-value".into()),
            ..MarketoConn::default()
        };
        let g = MagentoConn {
            password: Some("magento-password-value".into()),
            token: Some("magento-token-value".into()),
            access_token_secret: Some("oauth-secret-value".into()),
            ..MagentoConn::default()
        };
        let shown = format!("{m:?} {g:?}");
        for secret in [
            "marketo-secret-value",
            "magento-password-value",
            "magento-token-value",
            "oauth-secret-value",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        let err = parse_duration("5 fortnights").unwrap_err();
        assert!(err.contains("5 fortnights") && err.contains("90d"), "{err}");
        assert!(parse_duration("").is_err());
    }
}
