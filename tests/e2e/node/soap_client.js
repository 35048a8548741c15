#!/usr/bin/env node
// A real Node.js SOAP client against dfdg-mock: node-soap builds its clients from the served
// ?wsdl (following the imported XSD parts), calls services over mutual TLS with a client
// certificate, sends STAR's two SOAP headers, and prints what it parsed, one line per call.
//
// Driven by the Rust integration test tests/it/catalog.rs
// (node_soap_builds_its_client_from_the_served_wsdl_and_calls_over_mutual_tls).
// Usage: node soap_client.js --base https://localhost:PORT --ca F --cert F --key F --caller ID

'use strict';

const fs = require('fs');
const https = require('https');
const soap = require('soap');

function options(argv) {
  const parsed = {};
  for (let i = 2; i < argv.length; i += 2) {
    parsed[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const name of ['base', 'ca', 'cert', 'key', 'caller']) {
    if (!parsed[name]) {
      throw new Error(`missing --${name}`);
    }
  }
  return parsed;
}

function starHeaders(caller) {
  return [
    '<ao:ActiveOrganisationHeader xmlns:ao="http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/">',
    '<ao:OrganisationTypeIdentifier>8</ao:OrganisationTypeIdentifier>',
    '<ao:OrganisationCode>101</ao:OrganisationCode>',
    '</ao:ActiveOrganisationHeader>',
    '<rum:RequestUserMetadataHeader xmlns:rum="http://service.bm.dk/RequestUserMetadata/2015/01/21/"',
    ' xmlns:rus="http://service.bm.dk/pjaktass/2015/01/21/RequestUserStructure/"',
    ' xmlns:ru="http://service.bm.dk/pjaktass/2015/01/21/RequestUserTypeIdentifierCodeList/"',
    ' xmlns:clb="http://service.bm.dk/pjaktass/2013/06/07/CodeListBase/"',
    ' xmlns:ros="http://service.bm.dk/pjaktass/2015/01/21/RequestOrganisationStructure/">',
    '<rus:RequestUserStructure>',
    '<rus:UserFullName>Fagsystem Jobcenter Test</rus:UserFullName>',
    '<ru:RequestUserTypeIdentifier><clb:CodeListItemIdentifier>3</clb:CodeListItemIdentifier></ru:RequestUserTypeIdentifier>',
    `<rus:UserIdentifier>${caller}</rus:UserIdentifier>`,
    '</rus:RequestUserStructure>',
    '<ros:RequestOrganisationStructure>',
    '<ros:OrganisationTypeIdentifier><clb:CodeListItemIdentifier>8</clb:CodeListItemIdentifier></ros:OrganisationTypeIdentifier>',
    '<ros:OrganisationCode>101</ros:OrganisationCode>',
    '</ros:RequestOrganisationStructure>',
    `<rum:RegistrationDateTime>${new Date().toISOString()}</rum:RegistrationDateTime>`,
    '</rum:RequestUserMetadataHeader>',
  ].join('');
}

async function client(args, path, extra) {
  const tls = {
    ca: fs.readFileSync(args.ca),
    cert: fs.readFileSync(args.cert),
    key: fs.readFileSync(args.key),
  };
  // Trust only the test CA and present the client certificate, for the WSDL and every call.
  const agent = new https.Agent(tls);
  const made = await soap.createClientAsync(`${args.base}${path}?wsdl`, {
    wsdl_options: { httpsAgent: agent, timeout: 30000 },
    ...extra,
  });
  made.setSecurity(new soap.ClientSSLSecurity(tls.key, tls.cert, tls.ca));
  made.addSoapHeader(starHeaders(args.caller));
  return made;
}

async function main() {
  const args = options(process.argv);

  const jobcenter = await client(args, '/JobcenterMessageService/2/JobcenterMessageService.svc');
  const [saved] = await jobcenter.SaveAvailabilityAssessmentAsync({
    CivilRegistrationIdentifier: '0101701234',
    AvailabilityAssessmentCode: 1,
  });
  console.log(
    `JobcenterMessageService.SaveAvailabilityAssessment receipt ${saved.ServiceReceipt.MessageIdentifier}`,
  );

  const person = await client(args, '/PersonStatusService/20/PersonStatusService.svc');
  const [status] = await person.GetVariablePersonStatusAsync({
    CivilRegistrationIdentifier: '0101701234',
  });
  console.log(`PersonStatusService.GetVariablePersonStatus answered ${Object.keys(status).join(',')}`);

  const citizen = await client(
    args,
    '/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc',
    { forceSoap12Headers: true },
  );
  const [borger] = await citizen.GetBorgerstatusAsync({
    CivilRegistrationIdentifier: '0101701234',
  });
  console.log(`JobnetCitizenStatusService.GetBorgerstatus answered ${Object.keys(borger).join(',')}`);

  // A request the schema refuses: the DFDG fault comes back as a SOAP fault.
  try {
    await jobcenter.SaveAvailabilityAssessmentAsync({
      CivilRegistrationIdentifier: '12',
      AvailabilityAssessmentCode: 1,
    });
    console.log('no fault for an invalid CPR');
  } catch (error) {
    const body = error.body || String(error);
    const code = /<ErrorCode>(\d+)<\/ErrorCode>/.exec(body);
    console.log(`fault ${code ? code[1] : 'without ErrorCode'}`);
  }
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
