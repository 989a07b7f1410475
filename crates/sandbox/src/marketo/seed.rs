//! The subscription a new sandbox starts with: the documented system roles, a few custom
//! roles, workspaces 0 (AllZones), 1 (Default) and more, human users holding role/workspace
//! pairs, one pending invitation, and API-only users, one of which owns the custom service
//! whose credentials the sandbox prints.

use roster_domain::Secret;
use roster_domain::marketo_time;

use super::admin::generate_client_id;
use super::error::SandboxError;
use super::store::{NewUser, RoleRow, ServiceCredentials, Store, WorkspaceRow};
use super::users::INVITE_LIFETIME_MS;
use super::{PERMISSION_ACCESS_API, PERMISSION_ACCESS_USERS, PERMISSION_USER_MANAGEMENT_API};

/// The API-only user that owns the seeded custom service.
pub const SEED_API_USER: &str = "roster-api@acme.example";
pub const SEED_SERVICE: &str = "Roster";
pub const SUBSCRIPTION_ID: i64 = 3381;

fn ms(compact: &str) -> i64 {
    let at = marketo_time::parse(compact).expect("seed timestamps are valid");
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

struct SeedRole {
    id: i64,
    name: &'static str,
    description: &'static str,
    kind: &'static str,
    hidden: bool,
    only_all_zones: bool,
    all: bool,
    permissions: &'static [&'static str],
    created: &'static str,
}

const ROLES: &[SeedRole] = &[
    SeedRole {
        id: 1,
        name: "Admin",
        description: "All permissions",
        kind: "system",
        hidden: false,
        only_all_zones: true,
        all: true,
        permissions: &[],
        created: "20100327T18:27:42.0t+0000",
    },
    SeedRole {
        id: 2,
        name: "Standard User",
        description: "All permissions except Admin",
        kind: "system",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &[
            "Access Marketing Activities",
            "Access Design Studio",
            "Access Lead Database",
            "Access Analytics",
        ],
        created: "20100327T18:27:42.0t+0000",
    },
    SeedRole {
        id: 3,
        name: "Marketo Support",
        description: "Access for Marketo Support",
        kind: "system",
        hidden: true,
        only_all_zones: true,
        all: true,
        permissions: &[],
        created: "20100327T18:27:42.0t+0000",
    },
    SeedRole {
        id: 24,
        name: "RTP Launcher",
        description: "Role required for launcher in RTP",
        kind: "system",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &["Launch RTP Campaigns"],
        created: "20151024T01:45:40.0t+0000",
    },
    SeedRole {
        id: 25,
        name: "RTP Editor",
        description: "Role required for editor in RTP",
        kind: "system",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &["Edit RTP Campaigns"],
        created: "20151024T01:45:40.0t+0000",
    },
    SeedRole {
        id: 101,
        name: "Analytics User",
        description: "Has access to Analytics",
        kind: "custom",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &["Access Analytics"],
        created: "20100327T18:27:42.0t+0000",
    },
    SeedRole {
        id: 102,
        name: "Marketing User",
        description: "All permissions except Admin",
        kind: "custom",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &[
            "Access Marketing Activities",
            "Access Design Studio",
            "Access Lead Database",
        ],
        created: "20100327T18:27:42.0t+0000",
    },
    SeedRole {
        id: 103,
        name: "Web Designer",
        description: "Has access to Design Studio except approval permission",
        kind: "custom",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &["Access Design Studio"],
        created: "20100327T18:27:42.0t+0000",
    },
    SeedRole {
        id: 104,
        name: "API Role",
        description: "API-only role for user management integrations",
        kind: "custom",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &[
            PERMISSION_ACCESS_API,
            PERMISSION_USER_MANAGEMENT_API,
            PERMISSION_ACCESS_USERS,
            "Read-Only Lead",
        ],
        created: "20190514T09:12:03.0t+0000",
    },
    SeedRole {
        id: 105,
        name: "API Read-Only Leads",
        description: "API-only role for lead exports",
        kind: "custom",
        hidden: false,
        only_all_zones: false,
        all: false,
        permissions: &[PERMISSION_ACCESS_API, "Read-Only Lead"],
        created: "20190514T09:12:03.0t+0000",
    },
];

const WORKSPACES: &[(i64, &str, &str, i64, &str)] = &[
    (
        0,
        "AllZones",
        "All workspaces",
        1,
        "20100327T18:27:42.0t+0000",
    ),
    (
        1,
        "Default",
        "Initial workspace for Marketing Activities, Design Studio, and so on.",
        0,
        "20160910T23:08:05.0t+0000",
    ),
    (1008, "World", "", 0, "20181119T21:59:36.0t+0000"),
    (
        1009,
        "Reproduction - US English - All Leads",
        "A Workspace for recreating customer-reported problems.",
        1,
        "20190129T23:36:37.0t+0000",
    ),
    (
        1010,
        "US",
        "United States - Qualified Leads",
        0,
        "20190322T15:55:40.0t+0000",
    ),
    (
        1011,
        "EMEA",
        "Europe, Middle East and Africa",
        0,
        "20200114T10:02:11.0t+0000",
    ),
];

/// (email, first, last, [(role, workspace)], expires)
type SeedUser = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(i64, i64)],
    Option<&'static str>,
);
const HUMANS: &[SeedUser] = &[
    (
        "ada.lovelace@acme.example",
        "Ada",
        "Lovelace",
        &[(1, 0)],
        None,
    ),
    (
        "grace.hopper@acme.example",
        "Grace",
        "Hopper",
        &[(2, 1), (102, 1008)],
        None,
    ),
    (
        "alan.turing@acme.example",
        "Alan",
        "Turing",
        &[(101, 1010)],
        None,
    ),
    (
        "katherine.johnson@acme.example",
        "Katherine",
        "Johnson",
        &[(103, 1), (25, 1)],
        None,
    ),
    (
        "linus.torvalds@acme.example",
        "Linus",
        "Torvalds",
        &[(102, 1011), (24, 1011)],
        None,
    ),
    (
        "margaret.hamilton@acme.example",
        "Margaret",
        "Hamilton",
        &[(2, 1010), (2, 1011)],
        Some("2027-06-30T23:59:59Z"),
    ),
    (
        "o'brien+marketing@acme.example",
        "Siobhán",
        "O'Brien",
        &[(102, 1)],
        None,
    ),
];

/// Seeds an empty database and returns the credentials of its custom service.
pub async fn seed(
    store: &Store,
    client_id: Option<&str>,
    client_secret: Option<&Secret>,
    now: i64,
) -> Result<ServiceCredentials, SandboxError> {
    for r in ROLES {
        let at = ms(r.created);
        let row = RoleRow {
            id: r.id,
            name: r.name.into(),
            description: r.description.into(),
            kind: r.kind.into(),
            hidden: r.hidden,
            only_all_zones: r.only_all_zones,
            created_at: at,
            updated_at: at,
        };
        let perms: Vec<String> = r.permissions.iter().map(|p| (*p).to_owned()).collect();
        store.insert_role(&row, r.all, &perms).await?;
    }
    for &(id, name, description, global_viz, created) in WORKSPACES {
        let at = ms(created);
        store
            .insert_workspace(&WorkspaceRow {
                id,
                name: name.into(),
                description: description.into(),
                global_viz,
                status: "active".into(),
                created_at: at,
                updated_at: at,
            })
            .await?;
    }
    sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', 6784)")
        .execute(&store.pool)
        .await?;
    let created = ms("20210301T09:00:00.0t+0000");
    for &(email, first, last, grants, expires) in HUMANS {
        let user = NewUser {
            userid: email,
            email,
            first_name: first,
            last_name: last,
            api_only: false,
            pending: false,
            expires_at: expires.map(ms),
            reason: None,
            invite_token: None,
            invite_expires_at: None,
            now: created,
        };
        let id = store.insert_user(&user, grants).await?;
        sqlx::query("UPDATE users SET opted_in = 1, last_login_at = ? WHERE id = ?")
            .bind(now - 86_400_000)
            .bind(id)
            .execute(&store.pool)
            .await?;
    }
    let api_user = |email, first, last| NewUser {
        userid: email,
        email,
        first_name: first,
        last_name: last,
        api_only: true,
        pending: false,
        expires_at: None,
        reason: Some("Integration"),
        invite_token: None,
        invite_expires_at: None,
        now: created,
    };
    let api_id = store
        .insert_user(
            &api_user(SEED_API_USER, "Roster", "Integration"),
            &[(104, 1)],
        )
        .await?;
    store
        .insert_user(
            &api_user("lead-export@acme.example", "Lead", "Export"),
            &[(105, 1)],
        )
        .await?;

    // One invitation still waiting, as a real subscription usually has.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let pending = NewUser {
        userid: "new.hire@acme.example",
        email: "new.hire@acme.example",
        first_name: "Nia",
        last_name: "Hire",
        api_only: false,
        pending: true,
        expires_at: None,
        reason: Some("Joiner"),
        invite_token: Some(&token),
        invite_expires_at: Some(now + INVITE_LIFETIME_MS),
        now,
    };
    store.insert_user(&pending, &[(2, 1)]).await?;
    let body = "Hi Nia,\n\nada.lovelace@acme.example has invited you to Marketo.\n\nLog in to Marketo: {acceptUrl}\n\n\
                Your login ID is new.hire@acme.example. Choose a password on that page to activate your account.\n";
    store
        .send_mail(
            pending.email,
            "ada.lovelace@acme.example",
            super::invites::SUBJECT,
            body,
            Some(&token),
            now,
        )
        .await?;

    let client_id = client_id
        .map(str::to_owned)
        .unwrap_or_else(generate_client_id);
    let secret = client_secret
        .cloned()
        .unwrap_or_else(super::admin::generate_secret);
    store
        .insert_service(
            SEED_SERVICE,
            "Roster user management",
            &client_id,
            &secret,
            api_id,
            now,
        )
        .await?;
    store.set_meta("seeded_at", &now.to_string()).await?;
    Ok(ServiceCredentials {
        service: SEED_SERVICE.into(),
        client_id,
        client_secret: secret,
        api_user: SEED_API_USER.into(),
    })
}
