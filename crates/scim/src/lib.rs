//! SCIM 2.0 protocol logic, kept apart from HTTP and storage so it can be tested on its own:
//! filters (RFC 7644 3.4.2.2) evaluated against resources as JSON, PATCH (3.5.2) applied to
//! them with the quirks identity providers are known for, and errors that carry the right
//! `scimType`. Parsing of filters and paths is the `scim_v2` crate's.

pub mod error;
pub mod filter;
pub mod patch;
pub mod people;
pub mod sort;
mod value;

pub use error::ScimError;

/// Schema URNs.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The schema definitions a `/Schemas` endpoint serves (User, Group, enterprise User), as
/// the `scim_v2` crate carries them from RFC 7643, each with its `meta`.
pub fn schemas() -> Vec<serde_json::Value> {
    scim_v2::models::scim_schema::get_schemas(vec!["user", "group", "enterprise_user"])
        .map(|list| {
            list.into_iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .map(|mut v| {
                    let id = v["id"].as_str().unwrap_or_default().to_string();
                    v["schemas"] =
                        serde_json::json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
                    v["meta"] = serde_json::json!({
                        "resourceType": "Schema",
                        "location": format!("/scim/v2/Schemas/{id}"),
                    });
                    v
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_three_schemas_are_served() {
        let ids: Vec<String> = super::schemas()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, [super::USER, super::GROUP, super::ENTERPRISE_USER]);
        assert!(super::schemas()[0]["attributes"].as_array().unwrap().len() > 10);
    }
}
