//! Roles and workspaces by name: the command line says `Marketing User@World`, the API wants
//! `{"accessRoleId":102,"workspaceId":1008}`.

use roster_domain::access::{RoleAssignment, split_role_spec};

use crate::model::{Role, Workspace};

/// The instance's roles and workspaces, read once per job.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub roles: Vec<Role>,
    pub workspaces: Vec<Workspace>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    #[error("{spec:?} is not ROLE@WORKSPACE (for example \"Standard User@Default\")")]
    Malformed { spec: String },
    #[error("no role {name:?} in this instance; roles: {known}")]
    UnknownRole { name: String, known: String },
    #[error("no workspace {name:?} in this instance; workspaces: {known}")]
    UnknownWorkspace { name: String, known: String },
    #[error(
        "role {role:?} may only be granted in workspace 0 (AllZones), not in {workspace:?}; use {role}@AllZones"
    )]
    OnlyAllZones { role: String, workspace: String },
}

impl Directory {
    /// Resolves `ROLE@WORKSPACE`, where each side is a name (any case) or an id.
    pub fn resolve(&self, spec: &str) -> Result<RoleAssignment, ResolveError> {
        let (role_name, ws_name) =
            split_role_spec(spec).ok_or_else(|| ResolveError::Malformed {
                spec: spec.to_string(),
            })?;
        let role = self
            .roles
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(role_name))
            .or_else(|| self.roles.iter().find(|r| r.id.to_string() == role_name))
            .ok_or_else(|| ResolveError::UnknownRole {
                name: role_name.to_string(),
                known: self
                    .roles
                    .iter()
                    .filter(|r| !r.hidden)
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let workspace = self
            .workspaces
            .iter()
            .find(|w| w.name.eq_ignore_ascii_case(ws_name))
            .or_else(|| self.workspaces.iter().find(|w| w.id.to_string() == ws_name))
            .ok_or_else(|| ResolveError::UnknownWorkspace {
                name: ws_name.to_string(),
                known: self
                    .workspaces
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if role.only_all_zones && workspace.id != 0 {
            return Err(ResolveError::OnlyAllZones {
                role: role.name.clone(),
                workspace: workspace.name.clone(),
            });
        }
        Ok(RoleAssignment {
            workspace_id: workspace.id,
            workspace_name: workspace.name.clone(),
            role_id: role.id,
            role_name: role.name.clone(),
        })
    }

    /// Resolves every spec, reporting all the bad ones at once.
    pub fn resolve_all(&self, specs: &[String]) -> Result<Vec<RoleAssignment>, Vec<ResolveError>> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for spec in specs {
            match self.resolve(spec) {
                Ok(a) if !good.contains(&a) => good.push(a),
                Ok(_) => {}
                Err(e) => bad.push(e),
            }
        }
        if bad.is_empty() { Ok(good) } else { Err(bad) }
    }

    /// Checks that a remembered assignment (from a tombstone) still exists, by id.
    pub fn still_exists(&self, a: &RoleAssignment) -> bool {
        self.roles.iter().any(|r| r.id == a.role_id)
            && self.workspaces.iter().any(|w| w.id == a.workspace_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let role = |id, name: &str, all| Role {
            id,
            name: name.into(),
            description: None,
            kind: None,
            hidden: false,
            only_all_zones: all,
        };
        let ws = |id, name: &str| Workspace {
            id,
            name: name.into(),
            description: None,
            status: None,
        };
        Directory {
            roles: vec![role(1, "Admin", true), role(2, "Standard User", false)],
            workspaces: vec![ws(0, "AllZones"), ws(1, "Default"), ws(1008, "World")],
        }
    }

    #[test]
    fn names_and_ids_resolve() {
        let d = dir();
        let a = d.resolve("standard user@world").unwrap();
        assert_eq!((a.role_id, a.workspace_id), (2, 1008));
        assert_eq!(a.role_name, "Standard User");
        let b = d.resolve("2@1").unwrap();
        assert_eq!((b.role_id, b.workspace_id), (2, 1));
        assert_eq!(d.resolve("Admin@AllZones").unwrap().workspace_id, 0);
    }

    #[test]
    fn errors_name_what_exists() {
        let d = dir();
        let e = d.resolve("Boss@Default").unwrap_err().to_string();
        assert!(e.contains("Standard User"), "{e}");
        let e = d.resolve("Admin@Default").unwrap_err();
        assert!(matches!(e, ResolveError::OnlyAllZones { .. }));
        let all = d
            .resolve_all(&["x".into(), "Admin@Mars".into(), "Admin@0".into()])
            .unwrap_err();
        assert_eq!(all.len(), 2);
    }
}
