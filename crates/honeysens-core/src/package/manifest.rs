//! The service description inside a package: `honeysens.json`, or the old `metadata.xml`.

use crate::Error;
use crate::error::{Result, ValidationErrors};
use crate::ids::ServiceId;
use crate::model::{Architecture, ServiceRevisionSpec, ServiceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Placeholder digest used to validate a revision before its image is stored.
const PLACEHOLDER_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The package manifest (`honeysens.json`), in its JSON spelling (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageManifest {
    /// Service name, e.g. `ssh`.
    pub name: String,
    /// Image repository, e.g. `honeysens/ssh`.
    pub repository: String,
    /// Service description.
    #[serde(default)]
    pub description: String,
    /// Architectures the package carries one image each for.
    pub architectures: Vec<Architecture>,
    /// Revision label, e.g. `1.0.0`.
    pub revision: String,
    /// What changed in this revision.
    #[serde(default)]
    pub revision_description: String,
    /// `"2222/tcp" → 22`: container port 2222/tcp is reachable on sensor port 22.
    #[serde(default)]
    pub port_assignment: BTreeMap<String, u16>,
    /// Receives every inbound connection no other service takes.
    #[serde(default)]
    pub catch_all: bool,
    /// Runs in the host's network namespace.
    #[serde(default)]
    pub raw_network_access: bool,
}

impl PackageManifest {
    /// Parses `honeysens.json`; a syntax or type error is `Invalid` (field `honeysens.json`).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(
                "honeysens.json",
                "malformed",
                format!("not a valid package manifest: {e}"),
            )
        })
    }

    /// Parses the old HoneySens `metadata.xml` (root `<service>`, one element per field,
    /// `portAssignment` as JSON text, booleans `true`/`false`).
    pub fn from_metadata_xml(bytes: &[u8]) -> Result<Self> {
        let malformed = |msg: String| Error::invalid("metadata.xml", "malformed", msg);
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
        let doc = roxmltree::Document::parse(text).map_err(|e| malformed(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "service" {
            return Err(malformed("the root element must be <service>".into()));
        }
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        for child in root.children().filter(|n| n.is_element()) {
            let text: String = child
                .descendants()
                .filter(|n| n.is_text())
                .filter_map(|n| n.text())
                .collect();
            fields.insert(child.tag_name().name(), text.trim().to_owned());
        }
        let mut e = ValidationErrors::default();
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let boolean = |e: &mut ValidationErrors, k: &str| match fields.get(k).map(String::as_str) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => {
                e.add(k, "invalid_bool", "must be true or false");
                false
            }
        };
        let catch_all = boolean(&mut e, "catchAll");
        let raw_network_access = boolean(&mut e, "rawNetworkAccess");
        let arch_text = get("architecture");
        let architectures = match Architecture::parse(&arch_text) {
            Ok(a) => vec![a],
            Err(_) => {
                e.add(
                    "architecture",
                    "unknown_value",
                    "must be amd64, arm64 or armhf",
                );
                vec![]
            }
        };
        let ports = get("portAssignment");
        let port_assignment = if ports.is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_str(&ports).unwrap_or_else(|_| {
                e.add(
                    "portAssignment",
                    "malformed",
                    "must be a JSON object like {\"2222/tcp\": 22}",
                );
                BTreeMap::new()
            })
        };
        e.into_result()?;
        Ok(PackageManifest {
            name: get("name"),
            repository: get("repository"),
            description: get("description"),
            architectures,
            revision: get("revision"),
            revision_description: get("revisionDescription"),
            port_assignment,
            catch_all,
            raw_network_access,
        })
    }

    /// The service this manifest describes.
    pub fn service_spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: self.name.clone(),
            repository: self.repository.clone(),
            description: self.description.clone(),
        }
    }

    /// The revision for one architecture, with the digest of its stored image manifest.
    pub fn revision_spec(
        &self,
        service_id: ServiceId,
        architecture: Architecture,
        image_digest: String,
    ) -> ServiceRevisionSpec {
        ServiceRevisionSpec {
            service_id,
            revision: self.revision.clone(),
            architecture,
            description: self.revision_description.clone(),
            port_assignment: self.port_assignment.clone(),
            catch_all: self.catch_all,
            raw_network_access: self.raw_network_access,
            image_digest,
        }
    }

    /// Checks every field with the rules of [`ServiceSpec`] and [`ServiceRevisionSpec`]
    /// (the revision's `description` is reported as `revision_description`), and that the
    /// architectures are present and distinct.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        if let Err(Error::Invalid(v)) = self.service_spec().validate() {
            e.0.extend(v.0);
        }
        for arch in self.architectures.iter().take(1) {
            let spec = self.revision_spec(ServiceId(0), *arch, PLACEHOLDER_DIGEST.into());
            if let Err(Error::Invalid(v)) = spec.validate() {
                e.0.extend(v.0.into_iter().map(|mut f| {
                    if f.field == "description" {
                        f.field = "revision_description".into();
                    }
                    f
                }));
            }
        }
        // The label is the registry tag, so it must follow the OCI tag grammar.
        let tag_ok = self.revision.len() <= 128
            && self.revision.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphanumeric() || c == '_' || (i > 0 && (c == '.' || c == '-'))
            });
        if !self.revision.is_empty() && !tag_ok {
            e.add(
                "revision",
                "invalid_tag",
                "must be an image tag: letters, digits, _ . - (not leading . or -), at most 128",
            );
        }
        if self.architectures.is_empty() {
            e.add(
                "architectures",
                "required",
                "name at least one architecture",
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.architectures {
            if !seen.insert(*a) {
                e.add("architectures", "duplicate", format!("{a} named twice"));
            }
        }
        e.into_result()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn fields(e: Error) -> Vec<(String, &'static str)> {
        match e {
            Error::Invalid(v) => v.0.into_iter().map(|f| (f.field, f.code)).collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn json_and_xml_agree() {
        let json = br#"{"name":"ssh","repository":"honeysens/ssh","architectures":["amd64"],
            "revision":"1.0","revisionDescription":"first","portAssignment":{"2222/tcp":22},
            "catchAll":false,"rawNetworkAccess":true}"#;
        let xml = br#"<?xml version="1.0"?>
            <service><name>ssh</name><repository>honeysens/ssh</repository>
            <description></description><architecture>amd64</architecture>
            <revision>1.0</revision><revisionDescription>first</revisionDescription>
            <rawNetworkAccess>true</rawNetworkAccess><catchAll>false</catchAll>
            <portAssignment>{"2222/tcp": 22}</portAssignment></service>"#;
        let a = PackageManifest::from_json(json).unwrap();
        let b = PackageManifest::from_metadata_xml(xml).unwrap();
        assert_eq!(a, b);
        a.validate().unwrap();
    }

    #[test]
    fn field_errors() {
        let m = PackageManifest {
            name: "bad name".into(),
            repository: "Upper/Case".into(),
            description: String::new(),
            architectures: vec![Architecture::Amd64, Architecture::Amd64],
            revision: String::new(),
            revision_description: "x\0".into(),
            port_assignment: [("22/xyz".to_owned(), 22)].into(),
            catch_all: false,
            raw_network_access: false,
        };
        let f = fields(m.validate().unwrap_err());
        for want in [
            ("name", "invalid_login"),
            ("repository", "invalid_repository"),
            ("revision", "required"),
            ("revision_description", "control_chars"),
            ("port_assignment.22/xyz", "invalid_port"),
            ("architectures", "duplicate"),
        ] {
            assert!(
                f.iter().any(|(a, b)| (a.as_str(), *b) == want),
                "{want:?} in {f:?}"
            );
        }
        let f = fields(
            PackageManifest::from_metadata_xml(
                b"<service><architecture>sparc</architecture><catchAll>maybe</catchAll>\
                  <portAssignment>{x</portAssignment></service>",
            )
            .unwrap_err(),
        );
        assert_eq!(
            f,
            vec![
                ("catchAll".to_owned(), "invalid_bool"),
                ("architecture".to_owned(), "unknown_value"),
                ("portAssignment".to_owned(), "malformed"),
            ]
        );
        let mut spaced = PackageManifest::from_json(
            br#"{"name":"a","repository":"r","architectures":["amd64"],"revision":"1.0 beta"}"#,
        )
        .unwrap();
        assert_eq!(
            fields(spaced.validate().unwrap_err()),
            vec![("revision".to_owned(), "invalid_tag")]
        );
        spaced.revision = "1.0-beta_2".into();
        spaced.validate().unwrap();
        assert!(PackageManifest::from_metadata_xml(b"<other/>").is_err());
        assert!(PackageManifest::from_json(b"{").is_err());
    }
}
