//! Access as Roster records it: which role a person holds in which workspace.
//!
//! These types are shared by the connectors (which read them from an API) and the store
//! (which keeps them in tombstones and pending invites), so they live at the bottom.

use serde::{Deserialize, Serialize};

/// One role held in one workspace, with the names as the app showed them when it was read.
///
/// The ids are what the API needs; the names are kept so a tombstone stays readable after
/// a role or workspace is renamed or removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub workspace_id: i64,
    pub workspace_name: String,
    pub role_id: i64,
    pub role_name: String,
}

impl RoleAssignment {
    /// The `role@workspace` form that the command line accepts back.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.role_name, self.workspace_name)
    }
}

/// Splits `ROLE@WORKSPACE` at its last `@`, so role names containing `@` still work.
pub fn split_role_spec(spec: &str) -> Option<(&str, &str)> {
    let (role, workspace) = spec.rsplit_once('@')?;
    let (role, workspace) = (role.trim(), workspace.trim());
    (!role.is_empty() && !workspace.is_empty()).then_some((role, workspace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_at_the_last_at_sign() {
        assert_eq!(
            split_role_spec("Admin@AllZones"),
            Some(("Admin", "AllZones"))
        );
        assert_eq!(
            split_role_spec("Ops @ Team@ Default "),
            Some(("Ops @ Team", "Default"))
        );
        assert_eq!(split_role_spec("Admin"), None);
        assert_eq!(split_role_spec("@Default"), None);
        assert_eq!(split_role_spec("Admin@"), None);
    }

    #[test]
    fn spec_round_trips() {
        let a = RoleAssignment {
            workspace_id: 1,
            workspace_name: "Default".into(),
            role_id: 2,
            role_name: "Standard User".into(),
        };
        assert_eq!(
            split_role_spec(&a.spec()),
            Some(("Standard User", "Default"))
        );
    }
}
