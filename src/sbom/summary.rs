//! What `inspect` and `report` show per component, read back from an
//! attached CycloneDX SBOM: name, version, and the Debian patches applied.

use serde::Serialize;
use serde_json::Value;

use super::cyclonedx_bom::SECURITY_FIXES;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ComponentSummary {
    pub name: String,
    pub version: Option<String>,
    /// The Debian version the component was built or copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debian_version: Option<String>,
    /// Debian security patches applied on top of `version`, when it was
    /// built from a Debian source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_fixes: Option<u32>,
}

impl ComponentSummary {
    /// `nginx 1.26.3 (+19 Debian security fixes, 1.26.3-3+deb13u9)`.
    pub fn display(&self) -> String {
        component_line(
            &self.name,
            None,
            self.version.as_deref(),
            self.security_fixes,
            self.debian_version.as_deref(),
        )
    }
}

/// `name[:arch] [version] [(Debian note)]`, the one way `inspect` and
/// `report` write a component.
pub fn component_line(
    name: &str,
    arch: Option<&str>,
    version: Option<&str>,
    security_fixes: Option<u32>,
    debian_version: Option<&str>,
) -> String {
    let mut s = name.to_string();
    if let Some(a) = arch {
        s.push(':');
        s.push_str(a);
    }
    if let Some(v) = version {
        s.push(' ');
        s.push_str(v);
    }
    if let Some(note) = debian_note(security_fixes, debian_version) {
        s.push_str(&format!(" ({note})"));
    }
    s
}

/// `+19 Debian security fixes, 1.26.3-3+deb13u9`, `Debian 2.36-9+deb12u13`, or nothing.
fn debian_note(security_fixes: Option<u32>, debian_version: Option<&str>) -> Option<String> {
    match (security_fixes, debian_version) {
        (Some(n), Some(v)) => Some(format!(
            "+{n} Debian security fix{}, {v}",
            if n == 1 { "" } else { "es" }
        )),
        (Some(n), None) => Some(format!(
            "+{n} Debian security fix{}",
            if n == 1 { "" } else { "es" }
        )),
        (None, Some(v)) => Some(format!("Debian {v}")),
        (None, None) => None,
    }
}

/// The components of a CycloneDX BOM as armorred writes it; `None` when it
/// has no `components` array.
pub fn components(bom: &Value) -> Option<Vec<ComponentSummary>> {
    let list = bom.get("components")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|c| {
                let prop = |name: &str| {
                    c.get("properties")?
                        .as_array()?
                        .iter()
                        .find(|p| p["name"] == name)?["value"]
                        .as_str()
                        .map(str::to_string)
                };
                Some(ComponentSummary {
                    name: c.get("name")?.as_str()?.to_string(),
                    version: c
                        .get("version")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    debian_version: prop("debian:version"),
                    security_fixes: prop(SECURITY_FIXES).and_then(|n| n.parse().ok()),
                })
            })
            .collect(),
    )
}
