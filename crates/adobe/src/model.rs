//! Users and groups as UMAPI shows them. Unknown fields are ignored (Adobe adds fields with a
//! few weeks' notice) and unset ones are absent ("properties that are not populated are not
//! returned").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdentityType {
    #[serde(rename = "adobeID")]
    AdobeId,
    #[serde(rename = "enterpriseID")]
    EnterpriseId,
    #[serde(rename = "federatedID")]
    FederatedId,
    #[serde(other, rename = "unknown")]
    Unknown,
}

impl IdentityType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdobeId => "adobeID",
            Self::EnterpriseId => "enterpriseID",
            Self::FederatedId => "federatedID",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the organization owns the account (and may delete it): Enterprise and
    /// Federated IDs. An Adobe ID belongs to its person.
    pub fn org_owned(self) -> bool {
        matches!(self, Self::EnterpriseId | Self::FederatedId)
    }
}

impl std::str::FromStr for IdentityType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adobeID" => Ok(Self::AdobeId),
            "enterpriseID" => Ok(Self::EnterpriseId),
            "federatedID" => Ok(Self::FederatedId),
            other => Err(format!(
                "{other} is not an identity type: use federatedID, enterpriseID or adobeID"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdobeUser {
    #[serde(default)]
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(rename = "type")]
    pub kind: IdentityType,
    /// User groups, product profiles and admin groups (`_org_admin`, ...).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl AdobeUser {
    pub fn in_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g.eq_ignore_ascii_case(name))
    }

    pub fn is_org_admin(&self) -> bool {
        self.in_group("_org_admin")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdobeGroup {
    pub group_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub group_id: Option<i64>,
    #[serde(default)]
    pub member_count: Option<i64>,
    #[serde(default)]
    pub product_name: Option<String>,
}

impl AdobeGroup {
    pub fn is_product_profile(&self) -> bool {
        self.kind == "PRODUCT_PROFILE"
    }
}
