//! The start-up banner of `serve`: where it listens (SOAP and admin), what it serves, the
//! supplier registry's mode, and on a first start the test PKI with a ready-to-run demo call
//! (`demo-request.xml`, a registration with STAR's two caller headers, and the curl command).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::config::Config;
use crate::pki::{self, DemoPki};
use crate::wsdl::Catalog;

/// Writes the banner for a server from `config` serving `catalog` on `address` (admin side on
/// `admin`); with `pki`, the test PKI made or renewed at this start, it also writes the demo
/// request next to it and shows how to send it.
pub fn print(
    out: &mut impl Write,
    config: &Config,
    catalog: &Catalog,
    address: SocketAddr,
    admin: SocketAddr,
    pki: Option<&DemoPki>,
) -> anyhow::Result<()> {
    let host = if address.ip().is_loopback() || address.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        address.ip().to_string()
    };
    let url = format!("https://{host}:{}", address.port());
    writeln!(
        out,
        "dfdg-mock {} listening on {url} (client certificates: {}, journal: {})",
        env!("CARGO_PKG_VERSION"),
        config.client_auth.as_str(),
        config.journal_location()
    )?;
    writeln!(
        out,
        "admin: dashboard http://{admin}/, API described at http://{admin}/openapi.json{}",
        if config.admin.token.is_some() {
            " (bearer token required)"
        } else {
            ""
        }
    )?;
    if catalog.is_empty() {
        writeln!(
            out,
            "no WSDL catalog (looked in {}): every POST gets a generic receipt",
            display_dirs(&config.catalog.dirs)
        )?;
    } else {
        writeln!(
            out,
            "serving {} services from {} (validation {}); the catalog: {url}/",
            catalog.endpoints.len(),
            display_dirs(&config.catalog.dirs),
            config.catalog.validation.as_str()
        )?;
    }
    let registry = &config.onboarding.registry;
    if registry.exists() {
        writeln!(
            out,
            "supplier registry {}: only registered suppliers' certificates may call (`dfdg-mock supplier list`){}",
            registry.display(),
            if config.onboarding.strict {
                "; strict identity checks"
            } else {
                ""
            }
        )?;
    } else {
        writeln!(
            out,
            "no supplier registry ({}): open mode, any trusted certificate may call everything",
            registry.display()
        )?;
    }
    let Some(demo) = pki else {
        return Ok(());
    };
    let paths = &demo.paths;
    if demo.created_ca {
        writeln!(out, "created a test PKI in {}", paths.dir.display())?;
    } else if demo.issued_server || demo.issued_client {
        writeln!(
            out,
            "renewed certificates of the test PKI in {}",
            paths.dir.display()
        )?;
    }
    let client = &demo.client;
    let certificate = std::fs::read(&client.cert)
        .with_context(|| format!("cannot read {}", client.cert.display()))?;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&certificate)
        .with_context(|| format!("{} is not a PEM certificate", client.cert.display()))?;
    let caller_id = crate::identity::CallerIdentity::from_der(&der)?.caller_id;
    let request = paths.dir.join("demo-request.xml");
    std::fs::write(&request, demo_request(&caller_id))
        .with_context(|| format!("cannot write {}", request.display()))?;
    writeln!(
        out,
        "demo client certificate: {} (caller id {caller_id}; PKCS#12 {} for Java, {} for .NET/Mono, password \"{}\")",
        client.cert.display(),
        client.pkcs12(pki::Pkcs12Kind::Modern).display(),
        client.pkcs12(pki::Pkcs12Kind::Legacy).display(),
        demo.client_p12_password,
    )?;
    writeln!(out, "\nTry it:\n")?;
    writeln!(
        out,
        "  curl --cacert {} --cert {} --key {} \\\n    -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: \"{DEMO_NAMESPACE}#SaveAvailabilityAssessment\"' \\\n    --data-binary @{} {url}{DEMO_PATH}\n",
        paths.ca_cert().display(),
        client.cert.display(),
        client.key.display(),
        request.display(),
    )?;
    writeln!(
        out,
        "  dfdg-mock calls        # the journal: who called, and the receipt\n"
    )?;
    out.flush()?;
    Ok(())
}

/// The WSB line: who STAR's pushes present themselves as, and where suppliers keep their
/// subscriptions (`url` is the SOAP listener's).
pub fn wsb(
    out: &mut impl Write,
    star: &crate::identity::CallerIdentity,
    address: SocketAddr,
) -> anyhow::Result<()> {
    let host = if address.ip().is_loopback() || address.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        address.ip().to_string()
    };
    writeln!(
        out,
        "WSB: pushes to suppliers' webhooks as STAR ({}, SHA-256 {}); subscriptions: https://{host}:{}{}/SyncWebhookAbonnementer; deliveries: `dfdg-mock wsb deliveries`",
        star.caller_id,
        star.fingerprint.to_ascii_uppercase(),
        address.port(),
        crate::app::wsb::PREFIX,
    )?;
    Ok(())
}

pub fn display_dirs(dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(", ")
}

/// Path and namespace of the demo call printed on start.
pub const DEMO_PATH: &str = "/JobcenterMessageService/2/JobcenterMessageService.svc";
pub const DEMO_NAMESPACE: &str = "urn:dfdg-mock:JobcenterMessageService:2";

/// A registration call with STAR's two caller headers, made on behalf of `caller_id`.
pub fn demo_request(caller_id: &str) -> String {
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header>
    <ActiveOrganisationHeader xmlns="http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/">
      <OrganisationTypeIdentifier>8</OrganisationTypeIdentifier>
      <OrganisationCode>101</OrganisationCode>
    </ActiveOrganisationHeader>
    <RequestUserMetadataHeader xmlns="http://service.bm.dk/RequestUserMetadata/2015/01/21/"
        xmlns:rus="http://service.bm.dk/pjaktass/2015/01/21/RequestUserStructure/"
        xmlns:ru="http://service.bm.dk/pjaktass/2015/01/21/RequestUserTypeIdentifierCodeList/"
        xmlns:clb="http://service.bm.dk/pjaktass/2013/06/07/CodeListBase/"
        xmlns:ros="http://service.bm.dk/pjaktass/2015/01/21/RequestOrganisationStructure/">
      <rus:RequestUserStructure>
        <rus:UserFullName>Fagsystem Jobcenter Test</rus:UserFullName>
        <ru:RequestUserTypeIdentifier><clb:CodeListItemIdentifier>3</clb:CodeListItemIdentifier></ru:RequestUserTypeIdentifier>
        <rus:UserIdentifier>{caller_id}</rus:UserIdentifier>
      </rus:RequestUserStructure>
      <ros:RequestOrganisationStructure>
        <ros:OrganisationTypeIdentifier><clb:CodeListItemIdentifier>8</clb:CodeListItemIdentifier></ros:OrganisationTypeIdentifier>
        <ros:OrganisationCode>101</ros:OrganisationCode>
      </ros:RequestOrganisationStructure>
      <RegistrationDateTime>{now}</RegistrationDateTime>
    </RequestUserMetadataHeader>
  </soap:Header>
  <soap:Body>
    <SaveAvailabilityAssessment xmlns="{DEMO_NAMESPACE}">
      <CivilRegistrationIdentifier>0101701234</CivilRegistrationIdentifier>
      <AvailabilityAssessmentCode>1</AvailabilityAssessmentCode>
    </SaveAvailabilityAssessment>
  </soap:Body>
</soap:Envelope>
"#
    )
}
