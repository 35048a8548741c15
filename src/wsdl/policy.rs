//! WS-Policy in a WSDL set: the policies (inline under `wsdl:definitions` or a binding, or in a
//! `wsdl:import`ed policy document) and what refers to them (`wsp:PolicyReference`,
//! `wsp:PolicyURIs`). dfdg-mock lists them so a supplier knows what the real service demands —
//! a SAML token above all, which STAR's own DFDG services do not use — and enforces none.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::xml::Element;
use super::{Problem, WSDL_NS};

/// WS-Policy 1.5 and the 2004/09 submission.
const POLICY_NS: [&str; 2] = [
    "http://www.w3.org/ns/ws-policy",
    "http://schemas.xmlsoap.org/ws/2004/09/policy",
];
const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";

/// One policy and what it demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `wsu:Id` (or `Name`), if it has one.
    pub id: Option<String>,
    pub file: PathBuf,
    pub line: usize,
    /// The assertions we recognise, in words ("a SAML token", …).
    pub demands: Vec<&'static str>,
    /// Whether a SAML token is demanded (directly or as the issued token).
    pub saml: bool,
    /// What refers to it: "binding X", "binding X, operation Y".
    pub used_by: Vec<String>,
}

/// Whether `root` is a policy document's root.
pub fn is_policy(root: &Element) -> bool {
    root.name.local == "Policy" && POLICY_NS.contains(&root.name.namespace.as_str())
}

fn is_policy_element(element: &Element, local: &str) -> bool {
    element.name.local == local && POLICY_NS.contains(&element.name.namespace.as_str())
}

/// The policies of a WSDL set and their users. `documents` are (file, root, is the root a
/// policy document); the WSDL documents' bindings are searched for references.
pub fn collect(documents: &[(&Path, &Element, bool)]) -> (Vec<Policy>, Vec<Problem>) {
    let mut policies: Vec<Policy> = Vec::new();
    for (file, root, is_document) in documents {
        if *is_document {
            policies.push(describe(file, root));
            continue;
        }
        for child in &root.children {
            if is_policy_element(child, "Policy") {
                policies.push(describe(file, child));
            }
        }
        for binding in root.children_named(WSDL_NS, "binding") {
            for inline in binding
                .children
                .iter()
                .filter(|c| is_policy_element(c, "Policy"))
            {
                let mut policy = describe(file, inline);
                policy.used_by.push(format!(
                    "binding {}",
                    binding.attribute("name").unwrap_or("?")
                ));
                policies.push(policy);
            }
        }
    }
    let mut notes = Vec::new();
    for (file, root, is_document) in documents {
        if *is_document {
            continue;
        }
        // Policies attach to bindings above all, also to portTypes, messages and ports.
        let attachable = root.children_in(WSDL_NS).filter(|c| {
            matches!(
                c.name.local.as_str(),
                "binding" | "portType" | "message" | "service"
            )
        });
        for subject in attachable {
            let name = subject.attribute("name").unwrap_or("?");
            let mut references = Vec::new();
            references_in(
                subject,
                &format!("{} {name}", subject.name.local),
                &mut references,
                0,
            );
            for (user, uri, line) in references {
                let id = uri.rsplit_once('#').map_or(uri.as_str(), |(_, id)| id);
                match policies
                    .iter_mut()
                    .find(|p| p.id.as_deref() == Some(id))
                {
                    Some(policy) => {
                        if !policy.used_by.contains(&user) {
                            policy.used_by.push(user);
                        }
                    }
                    None => notes.push(Problem {
                        file: file.to_path_buf(),
                        line: Some(line),
                        message: format!(
                            "{user} refers to the policy '{uri}', which no document of this WSDL holds"
                        ),
                    }),
                }
            }
        }
    }
    (policies, notes)
}

/// Policy references below `element` (not into inline policies): (user, URI, line).
fn references_in(
    element: &Element,
    user: &str,
    out: &mut Vec<(String, String, usize)>,
    depth: usize,
) {
    for namespace in POLICY_NS {
        if let Some(uris) = element.attribute_ns(namespace, "PolicyURIs") {
            for uri in uris.split_whitespace() {
                out.push((user.to_owned(), uri.to_owned(), element.line));
            }
        }
    }
    for child in &element.children {
        if is_policy_element(child, "PolicyReference") {
            if let Some(uri) = child.attribute("URI") {
                out.push((user.to_owned(), uri.to_owned(), child.line));
            }
            continue;
        }
        if is_policy_element(child, "Policy") || depth > 4 {
            continue;
        }
        let user = match (child.name.namespace.as_str(), child.name.local.as_str()) {
            (WSDL_NS, "operation") => format!(
                "{user}, operation {}",
                child.attribute("name").unwrap_or("?")
            ),
            (WSDL_NS, local @ ("input" | "output" | "fault")) => format!("{user} {local}"),
            (WSDL_NS, "port") => format!("{user}, port {}", child.attribute("name").unwrap_or("?")),
            _ => user.to_owned(),
        };
        references_in(child, &user, out, depth + 1);
    }
}

fn describe(file: &Path, policy: &Element) -> Policy {
    let mut demands = Vec::new();
    let mut saml = false;
    assertions(policy, &mut demands, &mut saml, 0);
    Policy {
        id: policy
            .attribute_ns(WSU_NS, "Id")
            .or_else(|| policy.attribute("Name"))
            .or_else(|| policy.attribute("Id"))
            .map(str::to_owned),
        file: file.to_path_buf(),
        line: policy.line,
        demands,
        saml,
        used_by: Vec::new(),
    }
}

fn assertions(element: &Element, demands: &mut Vec<&'static str>, saml: &mut bool, depth: usize) {
    if depth > 16 {
        return;
    }
    for child in &element.children {
        let demand = match child.name.local.as_str() {
            "SamlToken" => {
                *saml = true;
                Some("a SAML token")
            }
            "IssuedToken" => {
                if mentions_saml(child, 0) {
                    *saml = true;
                    Some("a SAML token issued by a security token service, WS-Trust")
                } else {
                    Some("a token issued by a security token service (WS-Trust)")
                }
            }
            "TransportBinding" => Some("transport security (HTTPS)"),
            "RequireClientCertificate" => Some("a client certificate (mutual TLS)"),
            "AsymmetricBinding" | "SymmetricBinding" => {
                Some("message security (WS-Security signatures)")
            }
            "X509Token" => Some("an X.509 certificate in the message"),
            "UsernameToken" => Some("a username token"),
            "SignedParts" | "SignedElements" => Some("signed message parts"),
            "EncryptedParts" | "EncryptedElements" => Some("encrypted message parts"),
            "Addressing" | "UsingAddressing" => Some("WS-Addressing headers"),
            _ => None,
        };
        if let Some(demand) = demand {
            if !demands.contains(&demand) {
                demands.push(demand);
            }
        }
        assertions(child, demands, saml, depth + 1);
    }
}

fn mentions_saml(element: &Element, depth: usize) -> bool {
    element.text.to_ascii_lowercase().contains("saml")
        || element.name.local.contains("Saml")
        || (depth < 16 && element.children.iter().any(|c| mentions_saml(c, depth + 1)))
}

impl Policy {
    /// One line for `check`: where, who uses it, what it demands, and that it is not enforced.
    pub fn note(&self) -> Problem {
        let mut message = format!(
            "WS-Policy '{}'",
            self.id.as_deref().unwrap_or("(without an id)")
        );
        if self.used_by.is_empty() {
            message.push_str(" (referred to by nothing)");
        } else {
            let _ = write!(message, " ({})", self.used_by.join("; "));
        }
        let others: Vec<&str> = self
            .demands
            .iter()
            .copied()
            .filter(|d| !d.contains("SAML"))
            .collect();
        if self.saml {
            message.push_str(": demands a SAML token");
            if let Some(saml) = self.demands.iter().find(|d| d.contains("SAML")) {
                let _ = write!(message, " ({saml})");
            }
            if !others.is_empty() {
                let _ = write!(message, "; also {}", others.join(", "));
            }
            message.push_str(". Listed, not enforced: dfdg-mock does not check the token and answers calls without one");
        } else if others.is_empty() {
            message.push_str(": no assertion dfdg-mock recognises. Listed, not enforced");
        } else {
            let _ = write!(
                message,
                ": demands {}. Listed, not enforced",
                others.join(", ")
            );
        }
        Problem {
            file: self.file.clone(),
            line: Some(self.line),
            message,
        }
    }
}
