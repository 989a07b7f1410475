//! Reading the apps' live state for planning, through the connectors' audit paths.

use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_domain::desired::{App, Roster};
use roster_domain::live::{
    Facts, Live, MagentoAdmin, MagentoCustomer, MagentoLive, MarketoLive, MarketoUser, Named,
    PendingInvite,
};
use roster_magento::{AdminUsers, Condition, Criteria};
use roster_marketo::audit;
use roster_store::InviteStatus;
use serde_json::Value;
use time::OffsetDateTime;

use crate::Globals;
use crate::conn::{MagentoConn, MarketoConn};
use crate::connect::MarketoSession;
use crate::events::Event;
use crate::magento_ops::MagentoSession;

const MARKETO: &str = "marketo";

/// The connections a plan or an apply works through: each app whose URL is configured.
pub struct Sessions {
    pub marketo: Option<MarketoSession>,
    pub magento: Option<MagentoSession>,
    /// The Adobe Admin Console as an app of its own (`access: { adobe: ... }`).
    pub adobe: Option<crate::adobe_app::AdobeSession>,
}

impl Sessions {
    /// Each app whose URL is in the environment or the config file.
    pub async fn open(g: &Globals) -> Result<Self> {
        let file = g.config_file()?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let max_retries = match env("ROSTER_MARKETO_MAX_RETRIES") {
            Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                anyhow::anyhow!(
                    "ROSTER_MARKETO_MAX_RETRIES is {n:?}: give a whole number of retries, like 6"
                )
            })?),
            None => None,
        };
        let marketo = env("ROSTER_MARKETO_URL")
            .or(file.marketo.url.clone())
            .map(|url| MarketoConn {
                url: Some(url),
                client_id: env("ROSTER_MARKETO_CLIENT_ID"),
                client_secret: env("ROSTER_MARKETO_CLIENT_SECRET"),
                max_retries,
                ..MarketoConn::default()
            });
        let magento = env("ROSTER_MAGENTO_URL")
            .or(file.magento.url.clone())
            .map(|url| MagentoConn {
                url: Some(url),
                username: env("ROSTER_MAGENTO_USERNAME"),
                password: env("ROSTER_MAGENTO_PASSWORD"),
                scope: "all".into(),
                totp_secret: env("ROSTER_MAGENTO_TOTP_SECRET"),
                totp_secret_file: env("ROSTER_MAGENTO_TOTP_SECRET_FILE").map(Into::into),
                token: env("ROSTER_MAGENTO_TOKEN"),
                consumer_key: env("ROSTER_MAGENTO_CONSUMER_KEY"),
                consumer_secret: env("ROSTER_MAGENTO_CONSUMER_SECRET"),
                access_token: env("ROSTER_MAGENTO_ACCESS_TOKEN"),
                access_token_secret: env("ROSTER_MAGENTO_ACCESS_TOKEN_SECRET"),
            });
        let mut sessions = Self::connect(marketo, magento, g).await?;
        sessions.adobe = crate::adobe_app::AdobeSession::configured(g).await?;
        sessions.reserve_ims_profiles();
        Ok(sessions)
    }

    /// The Marketo subscription's product profiles are Marketo's access: the Adobe app
    /// leaves them alone.
    pub fn reserve_ims_profiles(&mut self) {
        if let (Some(a), Some(link)) = (
            &mut self.adobe,
            self.marketo.as_ref().and_then(|m| m.ims.as_ref()),
        ) && link.client.org_id() == a.instance
        {
            a.reserved = link.profiles.clone();
        }
    }

    pub async fn connect(
        marketo: Option<MarketoConn>,
        magento: Option<MagentoConn>,
        g: &Globals,
    ) -> Result<Self> {
        let marketo = match marketo {
            Some(conn) => Some(MarketoSession::open(&conn, g).await?),
            None => None,
        };
        let magento = match magento {
            Some(conn) => Some(MagentoSession::open(&conn, g).await?),
            None => None,
        };
        Ok(Sessions {
            marketo,
            magento,
            adobe: None,
        })
    }

    /// Where the sessions' events go (the first session's: they share one sink).
    pub fn events(&self) -> Option<&crate::events::Events> {
        self.marketo
            .as_ref()
            .map(|s| &s.events)
            .or(self.magento.as_ref().map(|s| &s.events))
            .or(self.adobe.as_ref().map(|s| &s.events))
    }

    pub fn configured(&self, app: App) -> bool {
        match app {
            App::Marketo => self.marketo.is_some(),
            App::Magento => self.magento.is_some(),
            App::Adobe => self.adobe.is_some(),
        }
    }

    /// The username Roster signs in to Magento with: never planned against.
    pub fn magento_username(&self) -> Option<String> {
        self.magento
            .as_ref()
            .map(|s| s.client.config().username.to_lowercase())
            .filter(|u| !u.is_empty())
    }

    /// Saves the Marketo quota used and prints what every connection cost.
    pub async fn finish(&mut self) -> Result<()> {
        if let Some(s) = &mut self.marketo {
            s.record_usage().await?;
            s.events.emit(Event::Cost {
                app: "marketo",
                line: s.cost_line(),
            });
        }
        if let Some(s) = &self.magento {
            s.events.emit(Event::Cost {
                app: "magento",
                line: s.cost_line(),
            });
        }
        if let Some(s) = &self.adobe {
            s.events.emit(Event::Cost {
                app: "adobe",
                line: s.cost_line(),
            });
        }
        Ok(())
    }
}

/// Reads the live state of every configured app; Magento customers of the roster's
/// website only, Adobe holders of the names the roster gives only (and the Adobe app only
/// when the roster mentions it).
pub async fn read(sessions: &Sessions, roster: &Roster) -> Result<Live> {
    let website = roster.policies.magento.website.as_str();
    let (marketo, magento, adobe) = tokio::try_join!(
        async {
            match &sessions.marketo {
                Some(s) => read_marketo(s).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &sessions.magento {
                Some(s) => read_magento(s, website).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &sessions.adobe {
                Some(s) if roster.mentions(App::Adobe) => s.read(roster).await.map(Some),
                _ => Ok(None),
            }
        }
    )?;
    Ok(Live {
        marketo,
        magento,
        adobe,
    })
}

async fn read_marketo(s: &MarketoSession) -> Result<MarketoLive> {
    let audit = audit::run(&s.client, std::sync::Arc::new(audit::Quiet))
        .await
        .context("reading Marketo users")?;
    let mut users: Vec<MarketoUser> = audit
        .users
        .iter()
        .map(|a| MarketoUser {
            userid: a.user.userid.clone(),
            email: a.user.email_address.trim().to_lowercase(),
            first_name: a.user.first_name.clone(),
            last_name: a.user.last_name.clone(),
            api_only: a.user.api_only,
            roles: a.roles.iter().map(Into::into).collect(),
            expires_at: a.expires_at,
            pending: None,
            facts: Facts {
                locked: a.locked,
                last_login_at: a.last_login_at,
                ..Facts::default()
            },
        })
        .collect();
    // The API cannot list pending invitations: check the ones Roster sent.
    let now = OffsetDateTime::now_utc();
    for invite in crate::marketo_ops::tracked_invites(s).await? {
        let unconfirmed = invite.status == InviteStatus::Unconfirmed;
        if users
            .iter()
            .any(|u| u.userid.eq_ignore_ascii_case(&invite.userid))
        {
            s.state
                .set_invite_status(
                    MARKETO,
                    &s.instance,
                    &invite.userid,
                    InviteStatus::Accepted,
                    now,
                )
                .await?;
            continue;
        }
        match s.client.invitation(&invite.userid).await? {
            Some(p) => {
                if unconfirmed {
                    // The attempt that timed out did send it.
                    s.state
                        .set_invite_status(
                            MARKETO,
                            &s.instance,
                            &invite.userid,
                            InviteStatus::Pending,
                            now,
                        )
                        .await?;
                }
                users.push(MarketoUser {
                    userid: invite.userid.clone(),
                    email: invite.email.trim().to_lowercase(),
                    first_name: invite.first_name.clone(),
                    last_name: invite.last_name.clone(),
                    api_only: false,
                    roles: invite.roles.iter().map(Into::into).collect(),
                    expires_at: None,
                    pending: Some(PendingInvite {
                        expires_at: p.expires_at,
                    }),
                    facts: Facts {
                        created_at: p.created_at,
                        ..Facts::default()
                    },
                })
            }
            None => {
                // Deleted outside Roster, or (unconfirmed) never made: the plan invites again.
                let status = if unconfirmed {
                    InviteStatus::NotSent
                } else {
                    InviteStatus::Deleted
                };
                s.state
                    .set_invite_status(MARKETO, &s.instance, &invite.userid, status, now)
                    .await?;
            }
        }
    }
    let ims = match &s.ims {
        Some(link) => Some({
            // Marketo's emails are lower-cased as read, as the Admin Console's are.
            let shown: std::collections::HashSet<&str> =
                users.iter().map(|u| u.email.as_str()).collect();
            link.read(&s.state, &s.instance, |email| shown.contains(email))
                .await?
        }),
        None => None,
    };
    Ok(MarketoLive {
        roles: audit
            .directory
            .roles
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        workspaces: audit
            .directory
            .workspaces
            .iter()
            .map(|w| w.name.clone())
            .collect(),
        users,
        ims,
    })
}

fn named(items: &[Value], name: &str) -> Vec<Named> {
    items
        .iter()
        .filter_map(|v| {
            Some(Named {
                id: v["id"].as_i64()?,
                name: v[name].as_str()?.to_string(),
            })
        })
        .collect()
}

/// Magento writes times as `YYYY-MM-DD HH:MM:SS` in UTC; anything else is left out rather
/// than guessed at.
fn magento_time(v: &Value, key: &str) -> Option<OffsetDateTime> {
    let raw = v[key].as_str()?.trim();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(raw, &format)
        .map(time::PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339))
        .ok()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

async fn read_magento(s: &MagentoSession, website: &str) -> Result<MagentoLive> {
    let c = &s.client;
    let (groups, websites, admins) = tokio::try_join!(c.groups(), c.websites(), c.admin_users())?;
    let websites = named(&websites, "code");
    let website_id = websites
        .iter()
        .find(|w| w.name.eq_ignore_ascii_case(website))
        .map(|w| w.id);
    let mut criteria = Criteria::new();
    if let Some(id) = website_id {
        criteria = criteria.and("website_id", Condition::Eq, id);
    }
    let customers = c
        .customers(&criteria, |_, _| {})
        .await
        .context("reading Magento customers")?;
    let (admins, admin_roles) = match admins {
        AdminUsers::Available(list) => (Some(list), Some(named(&c.admin_roles().await?, "name"))),
        AdminUsers::Unavailable => (None, None),
    };
    Ok(MagentoLive {
        groups: named(&groups, "code"),
        websites,
        admin_roles,
        website: website.to_string(),
        customers: customers
            .iter()
            .filter(|v| website_id.is_none_or(|w| v["website_id"].as_i64() == Some(w)))
            .map(|v| MagentoCustomer {
                id: v["id"].as_i64().unwrap_or_default(),
                email: text(v, "email").trim().to_lowercase(),
                first_name: text(v, "firstname"),
                last_name: text(v, "lastname"),
                group_id: v["group_id"].as_i64().unwrap_or_default(),
                website_id: v["website_id"].as_i64().unwrap_or_default(),
                facts: Facts {
                    created_at: magento_time(v, "created_at"),
                    updated_at: magento_time(v, "updated_at"),
                    ..Facts::default()
                },
            })
            .collect(),
        admins: admins.map(|list| {
            list.iter()
                .map(|v| MagentoAdmin {
                    id: v["id"].as_i64().unwrap_or_default(),
                    username: text(v, "username"),
                    email: text(v, "email").trim().to_lowercase(),
                    first_name: text(v, "firstname"),
                    last_name: text(v, "lastname"),
                    role_id: v["role_id"].as_i64(),
                    is_active: v["is_active"].as_bool().unwrap_or(true),
                    facts: Facts {
                        // Given by some admin-user extensions, not by all.
                        locked: magento_time(v, "lock_expires")
                            .is_some_and(|until| until > OffsetDateTime::now_utc()),
                        last_login_at: magento_time(v, "logdate"),
                        created_at: magento_time(v, "created_at"),
                        updated_at: magento_time(v, "modified").or(magento_time(v, "updated_at")),
                    },
                })
                .collect()
        }),
    })
}

/// Reads a roster file (and the CSV it may name), reporting every problem with its line.
pub fn load_roster(path: &Path) -> Result<Roster> {
    use roster_domain::roster_file::{self, Format};
    let name = path.display().to_string();
    let format = Format::of(&name).with_context(|| {
        format!("{name}: cannot tell the format; name the file .yaml, .yml, .toml or .csv")
    })?;
    let text = read_bounded(path, "the roster file")?;
    let problems = |list: Vec<roster_domain::desired::Problem>| {
        let lines: Vec<String> = list.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the roster has {} problem{}; nothing was read from the apps:\n  {}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n  ")
        )
    };
    let parsed = roster_file::parse(&name, &text, format).map_err(problems)?;
    let mut roster = parsed.roster;
    if let Some(csv) = parsed.people_file {
        let relative = Path::new(&csv);
        if relative.is_absolute() || Format::of(&csv) != Some(Format::Csv) {
            bail!(
                "{name}: people_file must be a relative path to a .csv file (it is resolved against the roster file's folder); got {}",
                roster_domain::text::sanitize(&csv)
            );
        }
        let csv_path = path.parent().unwrap_or(Path::new(".")).join(relative);
        let text = read_bounded(&csv_path, &format!("{name}: people_file"))?;
        roster_file::add_people(&mut roster, &csv_path.display().to_string(), &text)
            .map_err(problems)?;
    }
    Ok(roster)
}

/// A roster or people file's text: a regular file (not a device, a pipe or a folder) of at
/// most [`roster_file::MAX_FILE_BYTES`]. Errors never quote the content.
fn read_bounded(path: &Path, what: &str) -> Result<String> {
    use roster_domain::roster_file::MAX_FILE_BYTES;
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {shown}"))?;
    if !meta.is_file() {
        bail!("{what} {shown} is not a regular file; give the path of a file");
    }
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{what} {shown} is {} MiB; Roster reads files of up to {} MiB",
            meta.len() / (1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {what} {shown}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "{what} {shown} grew past {} MiB while it was read",
            MAX_FILE_BYTES / (1024 * 1024)
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} {shown} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}
