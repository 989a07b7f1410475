//! Exit codes that tell problems apart, so a script or a CI job can act on them without
//! reading the message (sysexits.h numbers where one fits):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (`plan --detailed-exitcode`: nothing to do) |
//! | 1 | any other failure, Roster's own refusals included (an approval missing, the apps changed since the plan) |
//! | 2 | usage: the command line is wrong (`plan --detailed-exitcode`: changes pending; `validate`: problems found) |
//! | 3 | `plan --detailed-exitcode`: blocked by a cap |
//! | 65 | invalid input: a roster or file has problems (each named with its line) |
//! | 69 | an app cannot be reached (network, TLS, nothing listening, gave up retrying) |
//! | 75 | try later: a daily quota or budget is spent, or the app throttles |
//! | 77 | an app refused: credentials or permissions |
//! | 78 | configuration: a setting or credential is missing or wrong |

use roster_adobe::AdobeError;
use roster_engine::problem::Problem;
use roster_magento::MagentoError;
use roster_marketo::MarketoError;

pub const INVALID: u8 = 65;
pub const UNREACHABLE: u8 = 69;
pub const TRY_LATER: u8 = 75;
pub const REFUSED: u8 = 77;
pub const CONFIGURATION: u8 = 78;

fn marketo(e: &MarketoError) -> Option<u8> {
    Some(match e {
        MarketoError::Transport { .. }
        | MarketoError::Unreachable { .. }
        | MarketoError::Certificate { .. } => UNREACHABLE,
        MarketoError::GaveUp { last, .. } => return marketo(last).or(Some(UNREACHABLE)),
        MarketoError::Credentials { .. } | MarketoError::TokenRefused { .. } => REFUSED,
        MarketoError::QuotaBudget { .. } => TRY_LATER,
        MarketoError::Config(_) => CONFIGURATION,
        MarketoError::Api(f) if f.code_is("607") || f.code_is("606") || f.code_is("615") => {
            TRY_LATER
        }
        MarketoError::Api(f)
            if f.code_is("601") || f.code_is("602") || f.code_is("603") || f.status == 403 =>
        {
            REFUSED
        }
        _ => return None,
    })
}

fn magento(e: &MagentoError) -> Option<u8> {
    Some(match e {
        MagentoError::Transport { .. } | MagentoError::Proxy { .. } => UNREACHABLE,
        MagentoError::SignIn { .. }
        | MagentoError::TwoFactorRequired { .. }
        | MagentoError::TwoFactorNotSetUp { .. }
        | MagentoError::TwoFactorCode { .. }
        | MagentoError::BearerRefused { .. } => REFUSED,
        MagentoError::Api { status, .. } if *status == 401 || *status == 403 => REFUSED,
        MagentoError::Invalid(_) => CONFIGURATION,
        _ => return None,
    })
}

fn adobe(e: &AdobeError) -> Option<u8> {
    Some(match e {
        AdobeError::Http { .. } | AdobeError::Unavailable { .. } => UNREACHABLE,
        AdobeError::SignIn { .. }
        | AdobeError::Unauthorized { .. }
        | AdobeError::Forbidden { .. } => REFUSED,
        AdobeError::Throttled { .. } => TRY_LATER,
        AdobeError::Invalid(_) => CONFIGURATION,
        _ => return None,
    })
}

/// The exit code for `err`: the first cause in its chain that says what kind it is.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        let found = if let Some(p) = cause.downcast_ref::<Problem>() {
            Some(match p {
                Problem::Invalid(_) => INVALID,
                Problem::NotConfigured(_) => CONFIGURATION,
            })
        } else if let Some(e) = cause.downcast_ref::<MarketoError>() {
            marketo(e)
        } else if let Some(e) = cause.downcast_ref::<MagentoError>() {
            magento(e)
        } else if let Some(e) = cause.downcast_ref::<AdobeError>() {
            adobe(e)
        } else if cause
            .downcast_ref::<roster_service::config::ConfigError>()
            .is_some()
        {
            Some(CONFIGURATION)
        } else {
            None
        };
        if let Some(code) = found {
            return code;
        }
    }
    1
}
