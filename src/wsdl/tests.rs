//! Unit tests of the catalog: loading (shipped catalog, imports, includes, rpc, broken files),
//! routing, validation of each XSD feature, generated responses validating against their own
//! schema, and WSDL rewriting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::{CatalogConfig, ServiceSettings, ValidationMode};

fn shipped() -> Loaded {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    Catalog::load(&CatalogConfig {
        dirs: vec![dir],
        validation: ValidationMode::Enforce,
        services: HashMap::new(),
    })
}

fn load_dir(dir: &Path) -> Loaded {
    Catalog::load(&CatalogConfig {
        dirs: vec![dir.to_owned()],
        validation: ValidationMode::Enforce,
        services: HashMap::new(),
    })
}

fn qname(namespace: &str, local: &str) -> QualifiedName {
    QualifiedName {
        namespace: namespace.to_owned(),
        local: local.to_owned(),
    }
}

/// Validates the Body element of a generated response against the operation's output.
fn response_findings(route: &Route<'_>, body: &str) -> Vec<Finding> {
    let root = xml::parse(body).expect("generated responses are well-formed");
    let envelope_ns = route.port.version.envelope_namespace();
    assert!(root.is(envelope_ns, "Envelope"), "{body}");
    let element = root
        .child(envelope_ns, "Body")
        .and_then(|b| b.children.first())
        .expect("a Body element");
    let mut findings = Vec::new();
    let output = route.operation.output.expect("an output");
    validate::element(
        route.schema,
        output,
        element,
        &format!("/{}", element.name.local),
        &mut findings,
    );
    findings
}

#[test]
fn shipped_catalog_loads_every_service_without_problems() {
    let loaded = shipped();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let catalog = &loaded.catalog;
    let paths = catalog.paths();
    for path in [
        "/JobcenterMessageService/2/JobcenterMessageService.svc",
        "/PersonStatusService/20/PersonStatusService.svc",
        "/CodeListService/1/CodeListService.svc",
        "/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path} not in {paths:?}");
    }
    let jobnet = catalog
        .endpoint("/jobnetcitizenstatusservice/10/JobnetCitizenStatusService.svc")
        .unwrap();
    assert_eq!(jobnet.ports[0].version, SoapVersion::V12);
    let register = catalog.endpoint(crate::cli::DEMO_PATH).unwrap().ports[0].operations[0].clone();
    assert_eq!(register.access, Access::Write);
    assert_eq!(register.headers.len(), 2);
    assert_eq!(register.faults[0].local, "FaultDetails");
    // Every part it imports is served.
    let wsdl = &catalog.wsdls[catalog.endpoint(crate::cli::DEMO_PATH).unwrap().wsdl];
    assert!(wsdl
        .parts
        .iter()
        .any(|p| p.key == "common/RequestUserMetadata.xsd"));
    assert!(wsdl
        .parts
        .iter()
        .any(|p| p.key == "common/CodeListBase.xsd"));
}

#[test]
fn every_shipped_operation_gets_a_response_that_validates_against_its_schema() {
    let loaded = shipped();
    let catalog = &loaded.catalog;
    let now = OffsetDateTime::now_utc();
    let mut count = 0;
    for endpoint in &catalog.endpoints {
        for port in &endpoint.ports {
            for operation in &port.operations {
                let route = catalog
                    .route(
                        &endpoint.path,
                        port.version,
                        operation.action.as_deref(),
                        &operation.input_name,
                    )
                    .unwrap();
                let response = route.default_response(now);
                let findings = response_findings(&route, &response.body);
                assert!(
                    findings.is_empty(),
                    "{}: {findings:?}\n{}",
                    operation.name,
                    response.body
                );
                assert!(!response.body.contains(">string<"), "{}", response.body);
                count += 1;
            }
        }
    }
    assert_eq!(count, 6);
}

#[test]
fn generated_values_are_plausible_and_receipts_are_fresh() {
    let loaded = shipped();
    let route = loaded
        .catalog
        .route(
            crate::cli::DEMO_PATH,
            SoapVersion::V11,
            Some("urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment"),
            &qname("urn:x", "ignored"),
        )
        .unwrap();
    let first = route.default_response(OffsetDateTime::now_utc());
    let second = route.default_response(OffsetDateTime::now_utc());
    assert_eq!(first.receipts.len(), 1);
    assert!(uuid::Uuid::parse_str(&first.receipts[0]).is_ok());
    assert_ne!(first.receipts, second.receipts);
    assert!(
        first.body.contains("<ServiceReceipt><MessageIdentifier>"),
        "{}",
        first.body
    );

    let person = loaded
        .catalog
        .route(
            "/PersonStatusService/20/PersonStatusService.svc",
            SoapVersion::V11,
            None,
            &qname(
                "urn:dfdg-mock:PersonStatusService:20",
                "GetVariablePersonStatus",
            ),
        )
        .unwrap()
        .default_response(OffsetDateTime::now_utc())
        .body;
    assert!(
        person.contains("<CivilRegistrationIdentifier>0101701234<"),
        "{person}"
    );
    assert!(person.contains("<MunicipalityCode>"), "{person}");
    assert!(person.contains("kind=\"Ledighed\""), "{person}");
}

const GOOD_REQUEST: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
<s:Header>
  <ActiveOrganisationHeader xmlns="http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/"><OrganisationTypeIdentifier>8</OrganisationTypeIdentifier><OrganisationCode>101</OrganisationCode></ActiveOrganisationHeader>
  <h:RequestUserMetadataHeader xmlns:h="http://service.bm.dk/RequestUserMetadata/2015/01/21/" xmlns:rus="http://service.bm.dk/pjaktass/2015/01/21/RequestUserStructure/" xmlns:ru="http://service.bm.dk/pjaktass/2015/01/21/RequestUserTypeIdentifierCodeList/" xmlns:clb="http://service.bm.dk/pjaktass/2013/06/07/CodeListBase/" xmlns:ros="http://service.bm.dk/pjaktass/2015/01/21/RequestOrganisationStructure/">
    <rus:RequestUserStructure><rus:UserFullName>A</rus:UserFullName><ru:RequestUserTypeIdentifier><clb:CodeListItemIdentifier>3</clb:CodeListItemIdentifier></ru:RequestUserTypeIdentifier><rus:UserIdentifier>CVR:91234567-UUID:x</rus:UserIdentifier></rus:RequestUserStructure>
    <ros:RequestOrganisationStructure><ros:OrganisationTypeIdentifier><clb:CodeListItemIdentifier>8</clb:CodeListItemIdentifier></ros:OrganisationTypeIdentifier><ros:OrganisationCode>101</ros:OrganisationCode></ros:RequestOrganisationStructure>
    <h:RegistrationDateTime>2026-11-27T10:00:00Z</h:RegistrationDateTime>
  </h:RequestUserMetadataHeader>
</s:Header>
<s:Body><SaveAvailabilityAssessment xmlns="urn:dfdg-mock:JobcenterMessageService:2"><CivilRegistrationIdentifier>0101701234</CivilRegistrationIdentifier><AvailabilityAssessmentCode>1</AvailabilityAssessmentCode></SaveAvailabilityAssessment></s:Body>
</s:Envelope>"#;

fn demo_route(catalog: &Catalog) -> Route<'_> {
    catalog
        .route(
            crate::cli::DEMO_PATH,
            SoapVersion::V11,
            Some("urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment"),
            &qname(
                "urn:dfdg-mock:JobcenterMessageService:2",
                "SaveAvailabilityAssessment",
            ),
        )
        .unwrap()
}

#[test]
fn valid_requests_pass_and_the_demo_request_is_valid() {
    let loaded = shipped();
    let route = demo_route(&loaded.catalog);
    assert_eq!(route.validate(GOOD_REQUEST), vec![]);
    let demo = crate::cli::demo_request("CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13");
    assert_eq!(route.validate(&demo), vec![]);
}

#[test]
fn findings_name_the_path_and_expected_versus_found() {
    let loaded = shipped();
    let route = demo_route(&loaded.catalog);
    let bad_value = GOOD_REQUEST.replace(">0101701234<", ">01017-1234<");
    let findings = route.validate(&bad_value);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].path,
        "/SaveAvailabilityAssessment/CivilRegistrationIdentifier"
    );
    assert!(findings[0].found.contains("[0-9]{10}"), "{}", findings[0]);

    let missing = GOOD_REQUEST.replace(
        "<AvailabilityAssessmentCode>1</AvailabilityAssessmentCode>",
        "",
    );
    let findings = route.validate(&missing);
    assert_eq!(findings[0].path, "/SaveAvailabilityAssessment");
    assert!(
        findings[0].expected.contains("AvailabilityAssessmentCode"),
        "{}",
        findings[0]
    );
    assert_eq!(findings[0].found, "the end of the element");

    let enumeration = GOOD_REQUEST.replace(
        "<AvailabilityAssessmentCode>1<",
        "<AvailabilityAssessmentCode>7<",
    );
    let findings = route.validate(&enumeration);
    assert!(findings[0].found.contains("not one of"), "{}", findings[0]);

    let unexpected = GOOD_REQUEST.replace(
        "<AvailabilityAssessmentCode>1</AvailabilityAssessmentCode>",
        "<AvailabilityAssessmentCode>1</AvailabilityAssessmentCode><Extra/>",
    );
    let findings = route.validate(&unexpected);
    assert_eq!(findings[0].path, "/SaveAvailabilityAssessment/Extra");

    let header = GOOD_REQUEST.replace(
        "<OrganisationTypeIdentifier>8<",
        "<OrganisationTypeIdentifier>101<",
    );
    let findings = route.validate(&header);
    assert_eq!(
        findings[0].path,
        "/Header/ActiveOrganisationHeader/OrganisationTypeIdentifier"
    );
    assert!(findings[0].found.contains("<= 100"), "{}", findings[0]);

    let envelope =
        crate::soap::parse_envelope(&GOOD_REQUEST.replace("ActiveOrganisationHeader", "Other"))
            .unwrap();
    assert_eq!(route.missing_star_header(&envelope).unwrap().code, 8232);
}

#[test]
fn routing_by_action_then_element_and_its_refusals() {
    let loaded = shipped();
    let catalog = &loaded.catalog;
    let element = qname("urn:dfdg-mock:CodeListService:1", "GetCodeListNames");
    let path = "/CodeListService/1/CodeListService.svc";
    let by_action = catalog
        .route(
            path,
            SoapVersion::V11,
            Some("urn:dfdg-mock:CodeListService:1#GetCodeList"),
            &element,
        )
        .unwrap();
    assert_eq!(by_action.operation.name, "GetCodeList");
    let by_element = catalog
        .route(path, SoapVersion::V11, Some(""), &element)
        .unwrap();
    assert_eq!(by_element.operation.name, "GetCodeListNames");

    match catalog.route(
        path,
        SoapVersion::V11,
        Some("urn:nope"),
        &qname("urn:x", "Nope"),
    ) {
        Err(problem @ RouteProblem::UnknownOperation { .. }) => {
            let text = problem.to_string();
            assert!(text.contains("GetCodeList, GetCodeListNames"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    match catalog.route(path, SoapVersion::V12, None, &element) {
        Err(problem @ RouteProblem::VersionMismatch { .. }) => {
            assert!(problem.to_string().contains("speaks SOAP 1.1"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    match catalog.route("/nope.svc", SoapVersion::V11, None, &element) {
        Err(RouteProblem::UnknownPath { served }) => assert_eq!(served.len(), 4),
        other => panic!("{other:?}"),
    }
}

#[test]
fn served_wsdl_points_at_the_callers_address_and_its_parts() {
    let loaded = shipped();
    let catalog = &loaded.catalog;
    let page = serve::get(
        catalog,
        crate::cli::DEMO_PATH,
        Some("WSDL"),
        "https://mock.test:9443",
    );
    let serve::Page::Found { body, .. } = page else {
        panic!("{page:?}")
    };
    assert!(body.contains(r#"location="https://mock.test:9443/JobcenterMessageService/2/JobcenterMessageService.svc""#), "{body}");
    let link = "https://mock.test:9443/JobcenterMessageService/2/JobcenterMessageService.svc?part=common/RequestUserMetadata.xsd";
    assert!(body.contains(link), "{body}");
    let part = serve::get(
        catalog,
        crate::cli::DEMO_PATH,
        Some("part=common/RequestUserMetadata.xsd"),
        "https://mock.test:9443",
    );
    let serve::Page::Found { body, .. } = part else {
        panic!("{part:?}")
    };
    assert!(
        body.contains("?part=common/RequestUserStructure.xsd"),
        "{body}"
    );
    assert!(matches!(
        serve::get(catalog, "/nope", Some("wsdl"), "https://x"),
        serve::Page::NotFound(_)
    ));
    let serve::Page::Found { body, .. } = serve::get(catalog, "/", None, "https://x") else {
        panic!()
    };
    assert!(
        body.contains("SaveAvailabilityAssessment [write]"),
        "{body}"
    );
    assert!(
        body.contains("https://x/PersonStatusService/20/PersonStatusService.svc?wsdl"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// A WSDL written to exercise every XSD feature the validator covers.

const FEATURES_XSD: &str = r#"<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:f="urn:features" elementFormDefault="qualified">
  <!-- chameleon: included without a targetNamespace, takes urn:features -->
  <xs:simpleType name="Code">
    <xs:restriction base="xs:string"><xs:length value="3"/></xs:restriction>
  </xs:simpleType>
</xs:schema>"#;

const FEATURES_WSDL: &str = r###"<?xml version="1.0"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:f="urn:features" targetNamespace="urn:features">
  <wsdl:types>
    <xs:schema targetNamespace="urn:features" elementFormDefault="qualified">
      <xs:include schemaLocation="parts/features.xsd"/>
      <xs:complexType name="Base">
        <xs:sequence><xs:element name="Id" type="xs:int"/></xs:sequence>
        <xs:attribute name="version" type="xs:int" use="required"/>
      </xs:complexType>
      <xs:complexType name="Derived">
        <xs:complexContent>
          <xs:extension base="f:Base">
            <xs:sequence><xs:element name="Extra" type="xs:string" minOccurs="0"/></xs:sequence>
          </xs:extension>
        </xs:complexContent>
      </xs:complexType>
      <xs:complexType name="Restricted">
        <xs:complexContent>
          <xs:restriction base="f:Base">
            <xs:sequence><xs:element name="Id" type="xs:int"/></xs:sequence>
          </xs:restriction>
        </xs:complexContent>
      </xs:complexType>
      <xs:complexType name="Amount">
        <xs:simpleContent>
          <xs:extension base="xs:decimal"><xs:attribute name="currency" type="f:Code" use="required"/></xs:extension>
        </xs:simpleContent>
      </xs:complexType>
      <xs:complexType name="SmallAmount">
        <xs:simpleContent>
          <xs:restriction base="f:Amount"><xs:maxInclusive value="100"/></xs:restriction>
        </xs:simpleContent>
      </xs:complexType>
      <xs:simpleType name="Codes"><xs:list itemType="f:Code"/></xs:simpleType>
      <xs:simpleType name="IntOrCode"><xs:union memberTypes="xs:int f:Code"/></xs:simpleType>
      <xs:group name="Names">
        <xs:sequence><xs:element name="First" type="xs:string"/><xs:element name="Last" type="xs:string" minOccurs="0"/></xs:sequence>
      </xs:group>
      <xs:element name="Note" type="xs:string"/>
      <xs:element name="Everything">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="Derived" type="f:Derived"/>
            <xs:element name="Restricted" type="f:Restricted" minOccurs="0"/>
            <xs:choice>
              <xs:element name="A" type="xs:int"/>
              <xs:element name="B" type="xs:boolean"/>
            </xs:choice>
            <xs:element name="Pair">
              <xs:complexType><xs:all><xs:element name="X" type="xs:int"/><xs:element name="Y" type="xs:int"/></xs:all></xs:complexType>
            </xs:element>
            <xs:element name="Amount" type="f:SmallAmount"/>
            <xs:element name="Codes" type="f:Codes"/>
            <xs:element name="Either" type="f:IntOrCode"/>
            <xs:group ref="f:Names"/>
            <xs:element ref="f:Note" minOccurs="0" maxOccurs="2"/>
            <xs:element name="Maybe" type="xs:date" nillable="true"/>
            <xs:any namespace="##other" processContents="lax" minOccurs="0"/>
            <xs:element name="Local" type="xs:string" form="unqualified"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="EverythingResponse" type="f:Derived"/>
    </xs:schema>
  </wsdl:types>
  <wsdl:import namespace="urn:features" location="parts/abstract.wsdl"/>
  <wsdl:binding name="B" type="f:P">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Everything">
      <soap:operation soapAction="urn:features#Everything"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
    <wsdl:operation name="Add">
      <soap:operation soapAction="urn:features#Add" style="rpc"/>
      <wsdl:input><soap:body use="literal" namespace="urn:features:rpc"/></wsdl:input>
      <wsdl:output><soap:body use="literal" namespace="urn:features:rpc"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="Features">
    <wsdl:port name="P" binding="f:B"><soap:address location="http://example/Features/1/Features.svc"/></wsdl:port>
  </wsdl:service>
</wsdl:definitions>"###;

const ABSTRACT_WSDL: &str = r#"<?xml version="1.0"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:f="urn:features" targetNamespace="urn:features">
  <wsdl:message name="In"><wsdl:part name="p" element="f:Everything"/></wsdl:message>
  <wsdl:message name="Out"><wsdl:part name="p" element="f:EverythingResponse"/></wsdl:message>
  <wsdl:message name="AddIn"><wsdl:part name="a" type="xs:int"/><wsdl:part name="b" type="xs:int"/></wsdl:message>
  <wsdl:message name="AddOut"><wsdl:part name="sum" type="xs:int"/></wsdl:message>
  <wsdl:portType name="P">
    <wsdl:operation name="Everything"><wsdl:input message="f:In"/><wsdl:output message="f:Out"/></wsdl:operation>
    <wsdl:operation name="Add"><wsdl:input message="f:AddIn"/><wsdl:output message="f:AddOut"/></wsdl:operation>
  </wsdl:portType>
</wsdl:definitions>"#;

const EVERYTHING: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<Everything xmlns="urn:features" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Derived version="2"><Id>1</Id><Extra>x</Extra></Derived>
  <B>true</B>
  <Pair><Y>2</Y><X>1</X></Pair>
  <Amount currency="DKK">99.50</Amount>
  <Codes>ABC DEF</Codes>
  <Either>XYZ</Either>
  <First>Anna</First>
  <Note>n1</Note><Note>n2</Note>
  <Maybe xsi:nil="true"/>
  <other:Thing xmlns:other="urn:other"><Anything/></other:Thing>
  <Local xmlns="">l</Local>
</Everything></s:Body></s:Envelope>"#;

fn features() -> (tempfile::TempDir, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("parts")).unwrap();
    std::fs::write(dir.path().join("features.wsdl"), FEATURES_WSDL).unwrap();
    std::fs::write(dir.path().join("parts/features.xsd"), FEATURES_XSD).unwrap();
    std::fs::write(dir.path().join("parts/abstract.wsdl"), ABSTRACT_WSDL).unwrap();
    let loaded = load_dir(dir.path());
    (dir, loaded)
}

fn everything(catalog: &Catalog) -> Route<'_> {
    catalog
        .route(
            "/Features/1/Features.svc",
            SoapVersion::V11,
            Some("urn:features#Everything"),
            &qname("urn:features", "Everything"),
        )
        .unwrap()
}

#[test]
fn features_wsdl_with_include_import_and_rpc_loads() {
    let (_dir, loaded) = features();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.catalog.endpoints.len(), 1);
    let route = everything(&loaded.catalog);
    assert_eq!(route.validate(EVERYTHING), vec![]);
    let response = route.default_response(OffsetDateTime::now_utc());
    assert_eq!(response_findings(&route, &response.body), vec![]);
    assert!(response.body.contains("version=\"1\""), "{}", response.body);

    let add = loaded
        .catalog
        .route(
            "/Features/1/Features.svc",
            SoapVersion::V11,
            Some("urn:features#Add"),
            &qname("", ""),
        )
        .unwrap();
    let request = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r:Add xmlns:r="urn:features:rpc"><a>1</a><b>2</b></r:Add></s:Body></s:Envelope>"#;
    assert_eq!(add.validate(request), vec![]);
    let findings = add.validate(&request.replace("<b>2</b>", "<b>two</b>"));
    assert_eq!(findings[0].path, "/Add/b");
    let response = add.default_response(OffsetDateTime::now_utc());
    assert!(
        response.body.contains(
            r#"<AddResponse xmlns="urn:features:rpc"><sum xmlns="">1</sum></AddResponse>"#
        ),
        "{}",
        response.body
    );
    // Unknown operations fall back on the Body element.
    assert_eq!(
        loaded
            .catalog
            .route(
                "/Features/1/Features.svc",
                SoapVersion::V11,
                None,
                &qname("urn:features:rpc", "Add")
            )
            .unwrap()
            .operation
            .name,
        "Add"
    );
}

#[test]
fn each_xsd_feature_reports_its_violation() {
    let (_dir, loaded) = features();
    let route = everything(&loaded.catalog);
    let cases: &[(&str, &str, &str)] = &[
        // (replace, with, expected path)
        (
            r#"<Derived version="2">"#,
            "<Derived>",
            "/Everything/Derived/@version",
        ),
        ("<Id>1</Id>", "<Id>x</Id>", "/Everything/Derived/Id"),
        ("<B>true</B>", "<C>true</C>", "/Everything/C"),
        (
            "<Pair><Y>2</Y><X>1</X></Pair>",
            "<Pair><Y>2</Y></Pair>",
            "/Everything/Pair",
        ),
        ("99.50", "199", "/Everything/Amount"),
        (
            r#"currency="DKK""#,
            r#"currency="DK""#,
            "/Everything/Amount/@currency",
        ),
        ("ABC DEF", "ABC DE", "/Everything/Codes"),
        (
            "<Either>XYZ</Either>",
            "<Either>XY</Either>",
            "/Everything/Either",
        ),
        ("<First>Anna</First>", "", "/Everything/Note[1]"),
        (
            "<Note>n2</Note>",
            "<Note>n2</Note><Note>n3</Note>",
            "/Everything/Note[3]",
        ),
        (
            r#"<Maybe xsi:nil="true"/>"#,
            "<Maybe>soon</Maybe>",
            "/Everything/Maybe",
        ),
        (
            r#"<Local xmlns="">l</Local>"#,
            "<Local>l</Local>",
            "/Everything/Local",
        ),
    ];
    for (from, to, path) in cases {
        assert!(EVERYTHING.contains(from), "{from}");
        let findings = route.validate(&EVERYTHING.replace(from, to));
        assert!(
            findings.iter().any(|f| f.path == *path),
            "{from} -> {to}: expected a finding at {path}, got {findings:?}"
        );
    }
}

#[test]
fn a_broken_file_is_reported_with_its_line_and_the_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let shipped_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    copy_dir(&shipped_dir, dir.path());
    std::fs::write(
        dir.path().join("Broken.wsdl"),
        "<?xml version=\"1.0\"?>\n<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\">\n  <wsdl:types>\n</wsdl:definitions>\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Dangling.wsdl"),
        FEATURES_WSDL.replace("parts/abstract.wsdl", "parts/missing.wsdl"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Orphan.wsdl"),
        "<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" xmlns:t=\"urn:t\" targetNamespace=\"urn:t\">\n\
         <wsdl:portType name=\"P\"/>\n\
         <wsdl:binding name=\"B\" type=\"t:P\"><soap:binding xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\"/>\n\
         <wsdl:operation name=\"Unserved\"/></wsdl:binding>\n</wsdl:definitions>\n",
    )
    .unwrap();
    let loaded = load_dir(dir.path());
    assert_eq!(loaded.catalog.endpoints.len(), 4);
    let text: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|p| p.contains("Broken.wsdl:4:")),
        "{text:?}"
    );
    // A binding no port uses is still checked.
    assert!(
        text.iter()
            .any(|p| p.contains("Orphan.wsdl:4: binding operation Unserved is not in portType")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains("Dangling.wsdl:") && p.contains("parts/missing.wsdl")),
        "{text:?}"
    );
}

#[test]
fn config_overrides_path_and_validation_per_service() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    let mut services = HashMap::new();
    services.insert(
        "CodeListService".to_owned(),
        ServiceSettings {
            path: Some("/codes".to_owned()),
            validation: Some(ValidationMode::Off),
        },
    );
    let loaded = Catalog::load(&CatalogConfig {
        dirs: vec![dir],
        validation: ValidationMode::Report,
        services,
    });
    let codes = loaded.catalog.endpoint("/codes").unwrap();
    assert_eq!(codes.validation, ValidationMode::Off);
    assert_eq!(
        loaded
            .catalog
            .endpoint(crate::cli::DEMO_PATH)
            .unwrap()
            .validation,
        ValidationMode::Report
    );
}

#[test]
fn missing_folder_is_an_empty_catalog_with_a_note() {
    let loaded = load_dir(Path::new("/nonexistent/dfdg-mock-wsdl"));
    assert!(loaded.catalog.is_empty());
    assert!(loaded.problems.is_empty());
    assert_eq!(loaded.notes.len(), 1);
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
#[ignore = "prints generated messages for a look; run with --ignored --nocapture"]
fn print_generated_messages() {
    let dirs = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/star"),
    ];
    for dir in dirs {
        let loaded = load_dir(&dir);
        for endpoint in &loaded.catalog.endpoints {
            for port in &endpoint.ports {
                for operation in &port.operations {
                    let route = loaded
                        .catalog
                        .route(
                            &endpoint.path,
                            port.version,
                            operation.action.as_deref(),
                            &operation.input_name,
                        )
                        .unwrap();
                    println!(
                        "== {} request\n{}",
                        operation.name,
                        route.example_request(OffsetDateTime::now_utc())
                    );
                    println!(
                        "== {} response\n{}",
                        operation.name,
                        route.default_response(OffsetDateTime::now_utc()).body
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real-world contracts: the OIO-style fixtures in tests/fixtures/oio.

fn oio() -> Loaded {
    let loaded = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oio"));
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    loaded
}

fn star() -> Option<(tempfile::TempDir, Loaded)> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/star/PlannerExternalCalendarService.wsdl");
    if !file.is_file() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        &file,
        dir.path().join("PlannerExternalCalendarService.wsdl"),
    )
    .unwrap();
    let loaded = load_dir(dir.path());
    Some((dir, loaded))
}

#[test]
fn oio_conventions_load_as_their_contracts_mean_them() {
    let loaded = oio();
    let catalog = &loaded.catalog;
    let route = |operation: &str| {
        catalog
            .routes()
            .find(|r| r.operation.name == operation)
            .unwrap_or_else(|| panic!("{operation} is not served"))
    };
    // Three xs:imports of one namespace, each from its own file: all three honoured.
    let person = route("PersonHent");
    let output = person.schema.element(person.operation.output.unwrap());
    assert_eq!(output.name.local, "PersonHent_O");
    for local in [
        "PersonCivilRegistrationIdentifier",
        "PersonNameStructure",
        "PersonStatusCode",
    ] {
        assert!(
            person
                .schema
                .global_element(&qname("http://rep.oio.example/cpr/2005/03/18/", local))
                .is_some(),
            "{local}"
        );
    }
    // soapActions that are not URIs route like any other; an empty one routes by the Body.
    let besked = catalog.endpoint("/Besked/1/BeskedService.svc").unwrap();
    let by_action = catalog
        .route(
            &besked.path,
            SoapVersion::V11,
            Some("Send Besked"),
            &qname("urn:x", "y"),
        )
        .unwrap();
    assert_eq!(by_action.operation.name, "BeskedSend");
    let ping = catalog
        .route(
            &besked.path,
            SoapVersion::V11,
            Some(""),
            &qname("urn:oio:example:besked:1", "Ping"),
        )
        .unwrap();
    assert_eq!(
        (ping.operation.name.as_str(), ping.operation.access),
        ("Ping", Access::Read)
    );
    // A SOAP 1.2 binding with the SOAP 1.1 transport URI is SOAP 1.2; the header reuses the
    // body's message, with and without parts= on the body.
    for operation in ["YdelseListeHent", "YdelseOpret"] {
        let route = route(operation);
        assert_eq!(route.port.version, SoapVersion::V12);
        assert_eq!(route.operation.input_name.local, operation);
        assert_eq!(route.operation.headers.len(), 1, "{operation}");
        assert_eq!(route.operation.headers[0].name.local, "InvocationContext");
    }
    // Non-ASCII names, from a UTF-16 file; percent-encoded paths reach them.
    let paamindelse = catalog
        .endpoint("/service/P%C3%A5mindelse/1/P%C3%A5mindelseService.svc")
        .unwrap();
    assert_eq!(paamindelse.service, "PåmindelseService");
    assert!(catalog
        .endpoint("/SERVICE/PÅMINDELSE/1/påmindelseservice.svc")
        .is_some());
    assert_eq!(
        route("getOIOPåmindelseSamlingHent").operation.access,
        Access::Read
    );
    assert_eq!(route("PåmindelseOpret").operation.access, Access::Write);
    // WS-Policy: listed with what they demand.
    let policies = &catalog.wsdls[route("DokumentHent").endpoint.wsdl].policies;
    assert_eq!(policies.len(), 2, "{policies:#?}");
    let saml = policies.iter().find(|p| p.saml).unwrap();
    assert_eq!(saml.id.as_deref(), Some("SamlTokenPolicy"));
    assert_eq!(saml.used_by.len(), 2, "{:?}", saml.used_by);
    assert!(loaded
        .notes
        .iter()
        .any(|n| n.message.contains("'SamlTokenPolicy'")
            && n.message.contains("demands a SAML token")));
    // A prefix borrowed from the including file is noted, once per file and prefix.
    let borrowed: Vec<&Problem> = loaded
        .notes
        .iter()
        .filter(|n| n.message.contains("is not declared in this file"))
        .collect();
    assert_eq!(borrowed.len(), 2, "{borrowed:#?}");
}

#[test]
fn every_generated_message_of_every_fixture_passes_our_validator() {
    let mut loaded = [shipped(), oio()];
    let star = star();
    if let Some((_, star)) = &star {
        assert!(star.problems.is_empty(), "{:?}", star.problems);
    }
    let mut operations = 0;
    for loaded in loaded.iter_mut().chain(star.map(|(_, l)| l).as_mut()) {
        let report = loaded.catalog.self_check(OffsetDateTime::now_utc());
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!(report.passed, report.operations);
        operations += report.operations;
    }
    assert!(operations >= 19, "{operations}");
}

#[test]
fn self_check_reports_a_generated_message_our_validator_refuses() {
    let (_dir, mut loaded) = features();
    // A type whose facets contradict each other: nothing the generator makes can fit.
    let schema = &mut loaded.catalog.wsdls[0].schema;
    schema.types.push(xsd::TypeDef::Simple(xsd::SimpleType {
        name: Some(qname("urn:features", "Impossible")),
        variety: xsd::Variety::Atomic(xsd::Builtin::Int),
        facets: xsd::Facets {
            min_inclusive: Some("5".to_owned()),
            max_inclusive: Some("2".to_owned()),
            ..xsd::Facets::default()
        },
    }));
    let impossible = xsd::TypeRef::Defined(schema.types.len() - 1);
    let id = schema
        .elements
        .iter()
        .position(|e| e.name.local == "Id")
        .unwrap();
    schema.elements[id].ty = impossible;
    let report = loaded.catalog.self_check(OffsetDateTime::now_utc());
    assert_eq!((report.operations, report.passed), (2, 1));
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    let text = report.problems[1].to_string();
    assert!(
        text.contains("features.wsdl: Features.Everything: the generated default answer does not validate against its own schema (1 finding(s); first: /EverythingResponse/Id: expected a value of type Impossible, found '1' is out of range: expected >= 5). This is a dfdg-mock bug"),
        "{text}"
    );
}

/// The tool-friendly form is the same contract: parsed, every document has the same elements,
/// attributes and resolved names as the published form, plus xs:imports in its schemas.
#[test]
fn the_tool_friendly_form_is_the_same_contract_plus_declarations_and_imports() {
    fn same(published: &xml::Element, tools: &xml::Element, path: &str, added: &mut usize) {
        assert_eq!(published.name, tools.name, "{path}");
        assert_eq!(published.attributes, tools.attributes, "{path}");
        assert_eq!(published.text.trim(), tools.text.trim(), "{path}");
        let mut theirs = tools.children.iter();
        for child in &published.children {
            let mut next = theirs.next().expect("a child is missing");
            while next.is(xsd::XSD_NS, "import")
                && !(child.is(xsd::XSD_NS, "import") && child.attributes == next.attributes)
            {
                assert!(
                    published.is(xsd::XSD_NS, "schema"),
                    "{path}: an import outside a schema"
                );
                *added += 1;
                next = theirs.next().expect("a child is missing");
            }
            same(child, next, &format!("{path}/{}", child.name.local), added);
        }
        for extra in theirs {
            assert!(
                extra.is(xsd::XSD_NS, "import"),
                "{path}: {} added",
                extra.name
            );
            *added += 1;
        }
    }
    let star = star();
    let mut all = vec![("shipped", shipped()), ("oio", oio())];
    if let Some((_, loaded)) = star {
        all.push(("star", loaded));
    }
    for (name, loaded) in &all {
        let catalog = &loaded.catalog;
        let mut added = 0;
        for endpoint in &catalog.endpoints {
            let published = serve::files(catalog, endpoint, "https://x", serve::Form::Published);
            let tools = serve::files(catalog, endpoint, "https://x", serve::Form::Tools);
            assert_eq!(published.len(), tools.len());
            for ((path, published), (_, tools)) in published.iter().zip(&tools) {
                let tools_root =
                    xml::parse(tools).unwrap_or_else(|e| panic!("{path}: {e}\n{tools}"));
                // An included file's borrowed prefixes do not resolve on their own, so the
                // published form is compared as the catalog read it.
                let published_root = xml::parse(published).unwrap();
                same(&published_root, &tools_root, path, &mut added);
            }
        }
        println!("{name}: {added} xs:imports added");
        match *name {
            // STAR's WSDL uses sibling inline schemas without importing them.
            // The calendar schema uses four sibling schemas' types without importing them.
            "star" => assert_eq!(added, 4),
            "oio" => assert!(added >= 1, "{added}"),
            _ => {}
        }
    }
    // STAR: every inline schema declares XSD as its default namespace, as it uses it.
    if let Some((_, star)) = &all.iter().find(|(n, _)| *n == "star") {
        let catalog = &star.catalog;
        let page = serve::get(
            catalog,
            &catalog.endpoints[0].path,
            Some("wsdl&tools"),
            "https://x",
        );
        let serve::Page::Found { body, .. } = page else {
            panic!("{page:?}")
        };
        let schemas = body.matches("<schema ").count();
        assert_eq!(schemas, 13);
        assert_eq!(
            body.matches(r#"xmlns="http://www.w3.org/2001/XMLSchema""#)
                .count(),
            1 + schemas,
            "{body}"
        );
        assert!(
            body.contains(r#"<import namespace="http://microsoft.com/wsdl/types/"/>"#),
            "{body}"
        );
    }
}

#[test]
fn served_parts_of_the_tool_friendly_form_link_to_each_other() {
    let loaded = oio();
    let catalog = &loaded.catalog;
    let sag = catalog.endpoint("/service/Sag/2").unwrap();
    let serve::Page::Found { body, .. } =
        serve::get(catalog, &sag.path, Some("wsdl&tools"), "https://x")
    else {
        panic!()
    };
    assert!(
        body.contains("https://x/service/Sag/2?part=xsd/sag/SagTyper.xsd&amp;tools"),
        "{body}"
    );
    let serve::Page::Found { body, .. } = serve::get(
        catalog,
        &sag.path,
        Some("part=xsd%2Fsag%2FSagTyper.xsd&tools"),
        "https://x",
    ) else {
        panic!()
    };
    // The borrowed prefixes are declared, and the namespace it refers to is imported.
    assert!(
        body.contains(r#"xmlns:sag="urn:oio:example:sag:2""#),
        "{body}"
    );
    assert!(
        body.contains(r#"xmlns:dkcc="http://rep.oio.example/dkcc/2005/01/27/""#),
        "{body}"
    );
    assert!(
        body.contains(r#"<xs:import namespace="http://rep.oio.example/dkcc/2005/01/27/" schemaLocation="https://x/service/Sag/2?part=xsd/dkcc/DKCC_Adresse.xsd&amp;tools"/>"#),
        "{body}"
    );
    // Decoded from windows-1252, served as UTF-8.
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        "{body}"
    );
    assert!(body.contains("\"vigtigste\" felter – saved"), "{body}");
    // As published, nothing is added.
    let serve::Page::Found { body, .. } = serve::get(
        catalog,
        &sag.path,
        Some("part=xsd/sag/SagTyper.xsd"),
        "https://x",
    ) else {
        panic!()
    };
    assert!(!body.contains("xmlns:sag"), "{body}");
}

#[test]
fn access_reads_danish_verbs_and_any_case() {
    for read in [
        "GetEvents",
        "getOIOPåmindelseSamlingHent",
        "PersonHent",
        "SagSøg",
        "AdresseList",
        "Ping",
    ] {
        assert_eq!(Access::of(read, None), Access::Read, "{read}");
    }
    for write in [
        "SaveAvailabilityAssessment",
        "PåmindelseOpret",
        "SagRet",
        "DokumentArkiver",
    ] {
        assert_eq!(Access::of(write, None), Access::Write, "{write}");
    }
    assert_eq!(Access::of("PersonHent", Some("write")), Access::Write);
}
