//! The SCIM 2.0 service provider at `/scim/v2` (RFC 7643/7644): identity providers push
//! Users and Groups here with a per-connection bearer token (`roster serve scim-token`).
//! Filters and PATCH are `roster-scim`'s; this module is the HTTP and storage around them:
//! discovery documents, paging, ETags with If-Match, uniqueness, and SCIM errors throughout.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use roster_scim::{ScimError, filter, patch};
use roster_store::{ScimConnection, ScimResource, ScimWriteError};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Shared;

const CONTENT_TYPE: &str = "application/scim+json";
const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// Page size when a client asks for none, and the most one page holds.
const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;
/// The largest request body.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    fn schema(self) -> &'static str {
        match self {
            Kind::User => roster_scim::USER,
            Kind::Group => roster_scim::GROUP,
        }
    }

    /// The attribute that names a resource uniquely.
    fn name_attr(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .route("/Users", get(list_users).post(create_user))
        .route("/.search", axum::routing::post(search_all))
        .route("/Users/.search", axum::routing::post(search_users))
        .route("/Groups/.search", axum::routing::post(search_groups))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/Groups", get(list_groups).post(create_group))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .fallback(|| async { Failure(ScimError::not_found("no such SCIM endpoint")) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// A SCIM error as a response.
struct Failure(ScimError);

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Failure(e)
    }
}

impl From<roster_store::StoreError> for Failure {
    fn from(e: roster_store::StoreError) -> Self {
        tracing::error!("SCIM: {e}");
        Failure(ScimError::new(
            500,
            None,
            "Roster's state could not be read or written; the service's log says why",
        ))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        scim(
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST),
            &self.0.body(),
        )
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn scim(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// The connection a request's bearer token belongs to.
struct Caller(ScimConnection);

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self> {
        let token = crate::tokens::bearer(&parts.headers).ok_or_else(|| {
            ScimError::new(
                401,
                None,
                "send Authorization: Bearer TOKEN (roster serve scim-token create)",
            )
        })?;
        shared
            .store
            .use_scim_connection(&crate::tokens::hash(token), OffsetDateTime::now_utc())
            .await?
            .map(Caller)
            .inspect(|c| crate::request_log::Actor::tell(parts, format!("scim:{}", c.0.name)))
            .ok_or_else(|| {
                ScimError::new(401, None, "this SCIM token is unknown or revoked").into()
            })
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/scim/v2")
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The resource as a client sees it: stored body with `id` and `meta` filled in.
fn rendered(r: &ScimResource, base: &str) -> Value {
    let mut body = r.body.clone();
    let kind = if r.kind == "Group" {
        Kind::Group
    } else {
        Kind::User
    };
    body["id"] = Value::String(r.id.clone());
    body["meta"] = json!({
        "resourceType": r.kind,
        "created": roster_engine::text::rfc3339(r.created_at),
        "lastModified": roster_engine::text::rfc3339(r.updated_at),
        "location": format!("{base}/{}/{}", kind.endpoint(), r.id),
        "version": etag(r.version),
    });
    body
}

fn one(status: StatusCode, r: &ScimResource, base: &str) -> Response {
    let body = rendered(r, base);
    let mut resp = scim(status, &body);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(r.version)) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(loc) = body["meta"]["location"].as_str()
        && let Ok(v) = HeaderValue::from_str(loc)
    {
        h.insert(header::LOCATION, v);
    }
    resp
}

/// The version an `If-Match` asks for; `*` and no header ask for none.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let n = text
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map_err(|_| {
            ScimError::new(
                412,
                None,
                format!("If-Match {text} is not a version this service issued"),
            )
        })?;
    Ok(Some(n))
}

fn parse_body(body: &Bytes) -> Result<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ScimError::bad("invalidSyntax", "the body is a JSON object").into());
    }
    Ok(v)
}

/// Checks a resource a client sent and keeps only what is its to set.
fn accept(kind: Kind, mut body: Value, creating: bool) -> Result<(Value, String, Option<String>)> {
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(kind.schema())));
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("a {} lists the schema {}", kind.name(), kind.schema()),
        )
        .into());
    }
    let map = body.as_object_mut().expect("checked an object");
    // Roster signs no one in with a SCIM password (`returned: never`): it is not kept.
    for read_only in ["id", "meta", "password"] {
        if let Some(k) = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case(read_only))
            .cloned()
        {
            map.remove(&k);
        }
    }
    let name = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(kind.name_attr()))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from);
    // RFC 7643: a User's userName is required; a Group's displayName is not (such a group
    // is known by its id).
    let name = match (kind, name) {
        (_, Some(n)) => n,
        (Kind::Group, None) => format!("\u{0}{}", uuid::Uuid::new_v4()),
        (Kind::User, None) => {
            return Err(ScimError::bad(
                "invalidValue",
                format!("a {} needs a non-empty {}", kind.name(), kind.name_attr()),
            )
            .into());
        }
    };
    let external_id = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("externalId"))
        .and_then(|(_, v)| v.as_str())
        .map(String::from);
    if kind == Kind::User {
        // `active` defaults to true when a user is made; Entra sends it as a string.
        let key = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case("active"))
            .cloned();
        let active = match &key {
            Some(k) => Some(
                roster_scim::filter::as_bool(&map[k])
                    .ok_or_else(|| ScimError::bad("invalidValue", "active is true or false"))?,
            ),
            None if creating => Some(true),
            None => None,
        };
        if let Some(a) = active {
            map.insert(key.unwrap_or_else(|| "active".into()), Value::Bool(a));
        }
        // The same rules as a roster file's: an address that only looks like another
        // (a Cyrillic letter, a zero-width space, a bidi override) never becomes a person.
        let user = Value::Object(map.clone());
        let addresses = user
            .get("emails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("value").and_then(Value::as_str))
            .map(|v| ("emails.value", v.to_string()))
            .chain(
                roster_scim::people::email_of(&user).map(|e| ("the email that keys the user", e)),
            );
        for (what, address) in addresses {
            let address = address.trim().to_lowercase();
            if let Some(why) = roster_domain::email::problem(&address) {
                return Err(
                    ScimError::bad("invalidValue", format!("{what}: the address {why}")).into(),
                );
            }
        }
    }
    // `schemas` lists the extensions the resource has, and only those.
    let has_extension = map
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(roster_scim::ENTERPRISE_USER) && v.is_object());
    if let Some(Value::Array(list)) = map.get_mut("schemas") {
        list.retain(|s| s.as_str() != Some(roster_scim::ENTERPRISE_USER));
        if has_extension {
            list.push(Value::String(roster_scim::ENTERPRISE_USER.into()));
        }
    }
    Ok((body, name, external_id))
}

fn written(e: ScimWriteError, kind: Kind, name: &str) -> Failure {
    match e {
        ScimWriteError::Taken => ScimError::new(
            409,
            Some("uniqueness"),
            format!(
                "a {} with {} {name:?} exists",
                kind.name(),
                kind.name_attr()
            ),
        )
        .into(),
        ScimWriteError::VersionMismatch { stored } => ScimError::new(
            412,
            None,
            format!(
                "the {} changed: it is at version {}",
                kind.name(),
                etag(stored)
            ),
        )
        .into(),
        ScimWriteError::NotFound => ScimError::not_found(format!("no such {}", kind.name())).into(),
        ScimWriteError::Store(e) => e.into(),
    }
}

async fn found(shared: &Shared, c: &ScimConnection, kind: Kind, id: &str) -> Result<ScimResource> {
    shared
        .store
        .scim_resource(&c.name, kind.name(), id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no {} with id {id}", kind.name())).into())
}

async fn create(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let (body, name, external_id) = accept(kind, parse_body(body)?, true)?;
    let now = OffsetDateTime::now_utc();
    let r = ScimResource {
        id: uuid::Uuid::new_v4().to_string(),
        connection: c.name.clone(),
        kind: kind.name().into(),
        name: name.clone(),
        external_id,
        version: 1,
        body,
        created_at: now,
        updated_at: now,
    };
    shared
        .store
        .create_scim(&r)
        .await
        .map_err(|e| written(e, kind, &name))?;
    Ok(one(StatusCode::CREATED, &r, &base_url(headers)))
}

async fn read(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    q: &ListQuery,
) -> Result<Response> {
    let r = found(shared, c, kind, id).await?;
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == etag(r.version))
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut resp = one(StatusCode::OK, &r, &base_url(headers));
    if q.attributes.is_some() || q.excluded_attributes.is_some() {
        let body = Projection::new(q.attributes.as_deref(), q.excluded_attributes.as_deref())
            .apply(rendered(&r, &base_url(headers)));
        let etag_header = resp.headers().get(header::ETAG).cloned();
        resp = scim(StatusCode::OK, &body);
        if let Some(e) = etag_header {
            resp.headers_mut().insert(header::ETAG, e);
        }
    }
    Ok(resp)
}

/// Stores `body` as the new state of `current` (If-Match checked).
async fn store_new(
    shared: &Shared,
    kind: Kind,
    mut current: ScimResource,
    body: Value,
    headers: &HeaderMap,
) -> Result<Response> {
    let (body, name, external_id) = accept(kind, body, false)?;
    let expected = if_match(headers)?;
    current.name = name.clone();
    current.external_id = external_id;
    current.body = body;
    current.updated_at = OffsetDateTime::now_utc();
    current.version = shared
        .store
        .update_scim(&current, expected)
        .await
        .map_err(|e| written(e, kind, &name))?;
    Ok(one(StatusCode::OK, &current, &base_url(headers)))
}

async fn replace(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let body = parse_body(body)?;
    let current = found(shared, c, kind, id).await?;
    if let Some(sent) = body.get("id").and_then(Value::as_str)
        && sent != current.id
    {
        return Err(ScimError::bad("mutability", "id cannot be changed").into());
    }
    store_new(shared, kind, current, body, headers).await
}

async fn modify(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let ops = parse_body(body)?;
    let current = found(shared, c, kind, id).await?;
    let mut changed = rendered(&current, "");
    patch::apply(&mut changed, &ops)?;
    store_new(shared, kind, current, changed, headers).await
}

async fn remove(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let expected = if_match(headers)?;
    shared
        .store
        .delete_scim(&c.name, kind.name(), id, expected)
        .await
        .map_err(|e| written(e, kind, id))?;
    if kind == Kind::User {
        // A deleted user is no group's member any more.
        for g in shared
            .store
            .scim_resources(&c.name, Kind::Group.name())
            .await?
        {
            let members = g.body["members"].as_array().cloned().unwrap_or_default();
            if members.iter().any(|m| m["value"].as_str() == Some(id)) {
                let mut g = g;
                g.body["members"] = Value::Array(
                    members
                        .into_iter()
                        .filter(|m| m["value"].as_str() != Some(id))
                        .collect(),
                );
                g.updated_at = OffsetDateTime::now_utc();
                if let Err(e) = shared.store.update_scim(&g, None).await {
                    return Err(written(e, Kind::Group, &g.name));
                }
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
    #[serde(rename = "sortBy")]
    sort_by: Option<String>,
    #[serde(rename = "sortOrder")]
    sort_order: Option<String>,
}

/// `attributes` / `excludedAttributes` (RFC 7644 3.4.2.5): which attributes an answer
/// carries. `id` and `schemas` are always returned.
struct Projection {
    only: Vec<String>,
    except: Vec<String>,
}

impl Projection {
    fn new(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let list = |v: Option<&str>| -> Vec<String> {
            v.unwrap_or_default()
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        };
        Projection {
            only: list(attributes),
            except: list(excluded),
        }
    }

    /// `name.givenName` -> (`name`, Some(`givenName`)); `urn:...:User:department` -> the
    /// extension's key and `department`; a core URN prefix is dropped.
    fn split(path: &str) -> (String, Option<String>) {
        let core = [roster_scim::USER, roster_scim::GROUP];
        let path = core
            .iter()
            .find_map(|u| path.strip_prefix(&format!("{u}:")))
            .unwrap_or(path);
        if path.starts_with("urn:") {
            return match path.rsplit_once(':') {
                Some((urn, attr)) if urn.contains(':') && !attr.is_empty() && urn.len() > 4 => {
                    if path.eq_ignore_ascii_case(roster_scim::ENTERPRISE_USER) {
                        (path.to_string(), None)
                    } else {
                        (urn.to_string(), Some(attr.to_string()))
                    }
                }
                _ => (path.to_string(), None),
            };
        }
        match path.split_once('.') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (path.to_string(), None),
        }
    }

    fn apply(&self, mut v: Value) -> Value {
        let Some(map) = v.as_object_mut() else {
            return v;
        };
        let always = |k: &str| ["id", "schemas"].iter().any(|a| a.eq_ignore_ascii_case(k));
        if !self.only.is_empty() {
            let wanted: Vec<(String, Option<String>)> =
                self.only.iter().map(|p| Self::split(p)).collect();
            map.retain(|k, _| always(k) || wanted.iter().any(|(a, _)| a.eq_ignore_ascii_case(k)));
            for (attr, sub) in &wanted {
                let whole = wanted
                    .iter()
                    .any(|(a, s)| a.eq_ignore_ascii_case(attr) && s.is_none());
                if let (Some(sub), false) = (sub, whole) {
                    let subs: Vec<&String> = wanted
                        .iter()
                        .filter(|(a, _)| a.eq_ignore_ascii_case(attr))
                        .filter_map(|(_, s)| s.as_ref())
                        .collect();
                    let _ = sub;
                    if let Some(key) = map.keys().find(|k| k.eq_ignore_ascii_case(attr)).cloned() {
                        let keep = |o: &mut serde_json::Map<String, Value>| {
                            o.retain(|k, _| subs.iter().any(|s| s.eq_ignore_ascii_case(k)));
                        };
                        match map.get_mut(&key) {
                            Some(Value::Object(o)) => keep(o),
                            Some(Value::Array(items)) => {
                                for i in items.iter_mut() {
                                    if let Value::Object(o) = i {
                                        keep(o);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for path in &self.except {
            let (attr, sub) = Self::split(path);
            if always(&attr) {
                continue;
            }
            let Some(key) = map.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned() else {
                continue;
            };
            match sub {
                None => {
                    map.remove(&key);
                }
                Some(sub) => {
                    let drop = |o: &mut serde_json::Map<String, Value>| {
                        o.retain(|k, _| !k.eq_ignore_ascii_case(&sub));
                    };
                    match map.get_mut(&key) {
                        Some(Value::Object(o)) => drop(o),
                        Some(Value::Array(items)) => {
                            for i in items.iter_mut() {
                                if let Value::Object(o) = i {
                                    drop(o);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        v
    }
}

fn number(what: &str, v: Option<&str>) -> Result<Option<i64>> {
    v.map(|t| {
        t.trim().parse::<i64>().map_err(|_| {
            ScimError::bad(
                "invalidValue",
                format!("{what} is a whole number, not {t:?}"),
            )
            .into()
        })
    })
    .transpose()
}

async fn list(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    q: &ListQuery,
    headers: &HeaderMap,
) -> Result<Response> {
    list_kinds(shared, c, &[kind], q, headers).await
}

async fn list_kinds(
    shared: &Shared,
    c: &ScimConnection,
    kinds: &[Kind],
    q: &ListQuery,
    headers: &HeaderMap,
) -> Result<Response> {
    let filter = q
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(filter::parse)
        .transpose()?;
    // RFC 7644 3.4.2.4: a startIndex below 1 is 1; a negative count is 0.
    let start = number("startIndex", q.start_index.as_deref())?
        .unwrap_or(1)
        .max(1) as usize;
    let count = number("count", q.count.as_deref())?
        .map_or(DEFAULT_COUNT, |n| n.clamp(0, MAX_COUNT as i64) as usize);
    let sort = q
        .sort_by
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|by| roster_scim::sort::SortBy::parse(by, q.sort_order.as_deref()))
        .transpose()?;
    let base = base_url(headers);
    let mut all = Vec::new();
    for kind in kinds {
        // `userName eq "..."` and `externalId eq "..."` (what an identity provider asks
        // before each create) come from an index; the filter still decides below.
        let found = match filter.as_ref().and_then(|f| indexed_lookup(f, *kind)) {
            Some((by, v)) => shared.store.scim_find(&c.name, kind.name(), by, &v).await?,
            None => shared.store.scim_resources(&c.name, kind.name()).await?,
        };
        all.extend(found);
    }
    let mut matching: Vec<Value> = all
        .iter()
        .map(|r| rendered(r, &base))
        .filter(|v| filter.as_ref().is_none_or(|f| filter::matches(f, v)))
        .collect();
    if let Some(sort) = &sort {
        sort.sort(&mut matching);
    }
    let total = matching.len();
    let projection = Projection::new(q.attributes.as_deref(), q.excluded_attributes.as_deref());
    let page: Vec<Value> = matching
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|v| projection.apply(v))
        .collect();
    Ok(scim(
        StatusCode::OK,
        &json!({
            "schemas": [roster_scim::LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// The index that answers `filter` exactly, if one does: an equality on the kind's name
/// attribute or on externalId.
fn indexed_lookup(f: &filter::Filter, kind: Kind) -> Option<(roster_store::ScimKey, String)> {
    use roster_scim::filter::{AttrExp, CompValue, CompareOp, Filter};
    let Filter::Attr(AttrExp::Comparison(path, CompareOp::Eq, CompValue::Str(v))) = f else {
        return None;
    };
    let core = path
        .uri
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(kind.schema()));
    if !core || path.sub_attr.is_some() {
        return None;
    }
    if path.name.eq_ignore_ascii_case(kind.name_attr()) {
        Some((roster_store::ScimKey::Name, v.clone()))
    } else if path.name.eq_ignore_ascii_case("externalId") {
        Some((roster_store::ScimKey::ExternalId, v.clone()))
    } else {
        None
    }
}

/// `POST /.search` at the root: Users and Groups together.
async fn search_all(
    State(shared): State<Arc<Shared>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let q = search_request(&parse_body(&sized(body)?)?)?;
    list_kinds(&shared, &c, &[Kind::User, Kind::Group], &q, &headers).await
}

/// A SearchRequest body (`POST /.search`, RFC 7644 3.4.3) as the list's query.
fn search_request(body: &Value) -> Result<ListQuery> {
    let is_search = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(SEARCH_REQUEST)));
    if !is_search {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("a search lists the schema {SEARCH_REQUEST}"),
        )
        .into());
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    let number = |k: &str| body.get(k).and_then(Value::as_i64).map(|n| n.to_string());
    let list = |k: &str| {
        body.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    Ok(ListQuery {
        filter: text("filter"),
        start_index: number("startIndex"),
        count: number("count"),
        attributes: list("attributes"),
        excluded_attributes: list("excludedAttributes"),
        sort_by: text("sortBy"),
        sort_order: text("sortOrder"),
    })
}

/// After a change, the instances the connection reaches reconcile soon, for the people the
/// change touched: `before` is the resource as it was (none for a create), `sent` the body
/// of a create; the resource as it is now is read back.
async fn changed(
    shared: &Arc<Shared>,
    c: &ScimConnection,
    kind: Kind,
    before: Option<Value>,
    written: Written<'_>,
    result: Result<Response>,
) -> Result<Response> {
    if result.is_ok() {
        let after = match written {
            Written::Sent(bytes) => serde_json::from_slice(bytes).ok(),
            Written::Id(id) => resource_body(shared, c, kind, id).await,
        };
        let people = touched(shared, c, kind, before.iter().chain(after.iter())).await;
        crate::workers::scim_changed(shared, c, people).await;
    }
    result
}

/// Where the resource a write left is: the body a create sent, or the id it has.
enum Written<'a> {
    Sent(&'a Bytes),
    Id(&'a str),
}

/// A stored resource's body, if there is one.
async fn resource_body(shared: &Shared, c: &ScimConnection, kind: Kind, id: &str) -> Option<Value> {
    shared
        .store
        .scim_resource(&c.name, kind.name(), id)
        .await
        .ok()
        .flatten()
        .map(|r| r.body)
}

/// The people (lower-cased emails) whose roster entry a change to these versions of a
/// resource can change: a user's own email; a mapped group's members. `Some(empty)`: none
/// (a group the configuration does not map); `None`: cannot tell, everyone is planned.
async fn touched<'a>(
    shared: &Shared,
    c: &ScimConnection,
    kind: Kind,
    versions: impl Iterator<Item = &'a Value>,
) -> Option<Vec<String>> {
    let versions: Vec<&Value> = versions.collect();
    let mut people = std::collections::BTreeSet::new();
    match kind {
        Kind::User => {
            for v in &versions {
                people.insert(roster_scim::people::email_of(v)?);
            }
        }
        Kind::Group => {
            let mapped = versions.iter().any(|v| {
                v["displayName"].as_str().is_some_and(|name| {
                    shared
                        .config
                        .scim
                        .groups
                        .keys()
                        .any(|g| g.eq_ignore_ascii_case(name))
                })
            });
            if !mapped {
                return Some(Vec::new());
            }
            let users = shared.store.scim_resources(&c.name, "User").await.ok()?;
            let email_of: std::collections::HashMap<&str, Option<String>> = users
                .iter()
                .map(|u| (u.id.as_str(), roster_scim::people::email_of(&u.body)))
                .collect();
            for v in &versions {
                for m in v["members"].as_array().into_iter().flatten() {
                    if let Some(Some(email)) = m["value"].as_str().and_then(|id| email_of.get(id)) {
                        people.insert(email.clone());
                    }
                }
            }
        }
    }
    Some(people.into_iter().collect())
}

/// A body within the limit, or a SCIM error saying how large one may be.
fn sized(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::new(413, None, format!("the body is over {MAX_BODY} bytes")).into()
        } else {
            ScimError::new(status.as_u16(), Some("invalidSyntax"), e.body_text()).into()
        }
    })
}

macro_rules! handlers {
    ($kind:expr, $list:ident, $search:ident, $create:ident, $get:ident, $put:ident, $patch:ident, $delete:ident) => {
        async fn $search(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            body: std::result::Result<Bytes, BytesRejection>,
        ) -> Result<Response> {
            let q = search_request(&parse_body(&sized(body)?)?)?;
            list(&shared, &c, $kind, &q, &headers).await
        }

        async fn $list(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            q: std::result::Result<Query<ListQuery>, QueryRejection>,
        ) -> Result<Response> {
            let Query(q) = q.map_err(|e| ScimError::bad("invalidValue", e.body_text()))?;
            list(&shared, &c, $kind, &q, &headers).await
        }

        async fn $create(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            body: std::result::Result<Bytes, BytesRejection>,
        ) -> Result<Response> {
            let body = sized(body)?;
            let result = create(&shared, &c, $kind, &headers, &body).await;
            changed(&shared, &c, $kind, None, Written::Sent(&body), result).await
        }

        async fn $get(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            Path(id): Path<String>,
            q: std::result::Result<Query<ListQuery>, QueryRejection>,
        ) -> Result<Response> {
            let Query(q) = q.map_err(|e| ScimError::bad("invalidValue", e.body_text()))?;
            read(&shared, &c, $kind, &id, &headers, &q).await
        }

        async fn $put(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            Path(id): Path<String>,
            body: std::result::Result<Bytes, BytesRejection>,
        ) -> Result<Response> {
            let before = resource_body(&shared, &c, $kind, &id).await;
            let result = replace(&shared, &c, $kind, &id, &headers, &sized(body)?).await;
            changed(&shared, &c, $kind, before, Written::Id(&id), result).await
        }

        async fn $patch(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            Path(id): Path<String>,
            body: std::result::Result<Bytes, BytesRejection>,
        ) -> Result<Response> {
            let before = resource_body(&shared, &c, $kind, &id).await;
            let result = modify(&shared, &c, $kind, &id, &headers, &sized(body)?).await;
            changed(&shared, &c, $kind, before, Written::Id(&id), result).await
        }

        async fn $delete(
            State(shared): State<Arc<Shared>>,
            Caller(c): Caller,
            headers: HeaderMap,
            Path(id): Path<String>,
        ) -> Result<Response> {
            let before = resource_body(&shared, &c, $kind, &id).await;
            let result = remove(&shared, &c, $kind, &id, &headers).await;
            changed(&shared, &c, $kind, before, Written::Id(&id), result).await
        }
    };
}

handlers!(
    Kind::User,
    list_users,
    search_users,
    create_user,
    get_user,
    put_user,
    patch_user,
    delete_user
);
handlers!(
    Kind::Group,
    list_groups,
    search_groups,
    create_group,
    get_group,
    put_group,
    patch_group,
    delete_group
);

async fn service_provider_config(_c: Caller) -> Response {
    scim(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/roster-dev/roster#scim",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A token per identity-provider connection: roster serve scim-token create --name NAME",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"}
        }),
    )
}

fn resource_type_list() -> [Value; 2] {
    [Kind::User, Kind::Group].map(|k| {
        let mut t = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": k.name(),
            "name": k.name(),
            "endpoint": format!("/{}", k.endpoint()),
            "schema": k.schema(),
            "meta": {"resourceType": "ResourceType", "location": format!("/scim/v2/ResourceTypes/{}", k.name())}
        });
        if k == Kind::User {
            t["schemaExtensions"] = json!([{"schema": roster_scim::ENTERPRISE_USER, "required": false}]);
        }
        t
    })
}

async fn resource_type(_c: Caller, Path(id): Path<String>) -> Result<Response> {
    resource_type_list()
        .into_iter()
        .find(|t| t["id"].as_str() == Some(id.as_str()))
        .map(|t| scim(StatusCode::OK, &t))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {id}")).into())
}

async fn schema(_c: Caller, Path(id): Path<String>) -> Result<Response> {
    roster_scim::schemas()
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id.as_str()))
        .map(|s| scim(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")).into())
}

async fn resource_types(_c: Caller) -> Response {
    let types = resource_type_list();
    scim(
        StatusCode::OK,
        &json!({
            "schemas": [roster_scim::LIST_RESPONSE],
            "totalResults": types.len(),
            "startIndex": 1,
            "itemsPerPage": types.len(),
            "Resources": types,
        }),
    )
}

async fn schemas(_c: Caller) -> Response {
    let list = roster_scim::schemas();
    scim(
        StatusCode::OK,
        &json!({
            "schemas": [roster_scim::LIST_RESPONSE],
            "totalResults": list.len(),
            "startIndex": 1,
            "itemsPerPage": list.len(),
            "Resources": list,
        }),
    )
}
