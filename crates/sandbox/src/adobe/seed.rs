//! The organization a new sandbox starts with: the claimed domain `acme.example` (Federated
//! IDs), the people of the Marketo sandbox's seed, the two Marketo Engage product profiles
//! (each linked to a Marketo subscription), two profiles of other products, a user group,
//! and the admin groups, `_org_admin` among them.

use sqlx::SqliteConnection;

use super::store::{self, NewUser};
use crate::marketo::SandboxError;

/// The Marketo subscription the production profile is linked to: the Marketo sandbox's own.
pub const MARKETO_PRODUCTION: i64 = crate::marketo::SUBSCRIPTION_ID;
/// The Marketo sandbox subscription (a separate instance no local Marketo sandbox serves by
/// default).
pub const MARKETO_SANDBOX: i64 = crate::marketo::SUBSCRIPTION_ID + 1;

pub const PROFILE_PRODUCTION: &str = "Marketo Engage - Production";
pub const PROFILE_SANDBOX: &str = "Marketo Engage - Sandbox";
pub const PROFILE_CREATIVE_CLOUD: &str = "Creative Cloud All Apps";
pub const PROFILE_ACROBAT: &str = "Acrobat Pro";
pub const USER_GROUP: &str = "Marketing Ops";

/// (email, first, last, country, groups)
const PEOPLE: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "ada.lovelace@acme.example",
        "Ada",
        "Lovelace",
        "GB",
        &["_org_admin", PROFILE_PRODUCTION],
    ),
    (
        "grace.hopper@acme.example",
        "Grace",
        "Hopper",
        "US",
        &[PROFILE_PRODUCTION, PROFILE_SANDBOX],
    ),
    (
        "alan.turing@acme.example",
        "Alan",
        "Turing",
        "GB",
        &[PROFILE_PRODUCTION, PROFILE_CREATIVE_CLOUD],
    ),
    (
        "katherine.johnson@acme.example",
        "Katherine",
        "Johnson",
        "US",
        &[USER_GROUP],
    ),
    (
        "linus.torvalds@acme.example",
        "Linus",
        "Torvalds",
        "FI",
        &[PROFILE_PRODUCTION, PROFILE_ACROBAT],
    ),
    (
        "margaret.hamilton@acme.example",
        "Margaret",
        "Hamilton",
        "US",
        &[PROFILE_PRODUCTION],
    ),
    (
        "o'brien+marketing@acme.example",
        "Siobhán",
        "O'Brien",
        "IE",
        &[PROFILE_PRODUCTION],
    ),
    (
        "it.admin@acme.example",
        "Ines",
        "Admin",
        "US",
        &["_org_admin", PROFILE_CREATIVE_CLOUD],
    ),
];

pub async fn seed(conn: &mut SqliteConnection, now_ms: i64) -> Result<(), SandboxError> {
    sqlx::query("INSERT INTO domains (name, id_type) VALUES ('acme.example', 'federatedID')")
        .execute(&mut *conn)
        .await?;
    // Admin groups first, as the Admin Console lists them.
    for (name, kind) in [
        ("_org_admin", "SYSADMIN_GROUP"),
        ("_support_admin", "SUPPORT_ADMIN_GROUP"),
        ("_deployment_admin", "DEPLOYMENT_ADMIN_GROUP"),
    ] {
        store::insert_group(conn, name, kind, "", None, None).await?;
    }
    for (name, product, link) in [
        (
            PROFILE_PRODUCTION,
            "Marketo Engage (MKTO)",
            Some(MARKETO_PRODUCTION),
        ),
        (
            PROFILE_SANDBOX,
            "Marketo Engage (MKTO)",
            Some(MARKETO_SANDBOX),
        ),
        (
            PROFILE_CREATIVE_CLOUD,
            "Creative Cloud All Apps (CCE)",
            None,
        ),
        (PROFILE_ACROBAT, "Acrobat Pro (DC)", None),
    ] {
        store::insert_group(conn, name, "PRODUCT_PROFILE", "", Some(product), link).await?;
    }
    let ug = store::insert_group(
        conn,
        USER_GROUP,
        "USER_GROUP",
        "Marketing operations: Marketo production",
        None,
        None,
    )
    .await?;
    let prod = store::group_by_name(conn, PROFILE_PRODUCTION)
        .await?
        .expect("seeded above");
    sqlx::query("INSERT INTO group_profiles (usergroup_id, profile_id) VALUES (?, ?)")
        .bind(ug)
        .bind(prod.id)
        .execute(&mut *conn)
        .await?;
    for (email, first, last, country, groups) in PEOPLE {
        let id = store::insert_user(
            conn,
            &NewUser {
                email,
                firstname: Some(first),
                lastname: Some(last),
                country: Some(country),
                kind: "federatedID",
            },
            now_ms,
        )
        .await?;
        for g in *groups {
            let group = store::group_by_name(conn, g).await?.expect("seeded above");
            store::add_member(conn, group.id, &id, now_ms).await?;
        }
    }
    // An Adobe ID from outside the organization's domains, as contractors often have.
    let id = store::insert_user(
        conn,
        &NewUser {
            email: "contractor@freelance.example",
            firstname: Some("Casey"),
            lastname: Some("Contractor"),
            country: Some("UD"),
            kind: "adobeID",
        },
        now_ms,
    )
    .await?;
    store::add_member(conn, prod.id, &id, now_ms).await?;
    Ok(())
}
