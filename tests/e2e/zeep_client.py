#!/usr/bin/env python3
"""A real SOAP client against dfdg-mock: zeep builds its clients from the served ?wsdl (following
the imported XSD parts), calls each shipped service over mutual TLS with a client certificate,
sends STAR's two SOAP headers, and prints what it parsed from the answers, one line per call.

Driven by the Rust integration test tests/it/catalog.rs
(zeep_builds_its_client_from_the_served_wsdl_and_calls_over_mutual_tls).
"""

import argparse
import datetime
import sys

import requests
from zeep import Client
from zeep.exceptions import Fault
from zeep.transports import Transport


def client(base, path, session):
    transport = Transport(session=session, timeout=30, operation_timeout=30)
    return Client(f"{base}{path}?wsdl", transport=transport)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="https://localhost:PORT")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--caller", required=True, help="the caller id of the certificate")
    args = parser.parse_args()

    session = requests.Session()
    # Trust only the test CA: REQUESTS_CA_BUNDLE and proxies from the environment would win
    # over session.verify otherwise.
    session.trust_env = False
    session.verify = args.ca
    session.cert = (args.cert, args.key)

    headers = {
        "ActiveOrganisationHeader": {"OrganisationTypeIdentifier": 8, "OrganisationCode": "101"},
        "RequestUserMetadataHeader": {
            "RequestUserStructure": {
                "UserFullName": "Fagsystem Jobcenter Test",
                "RequestUserTypeIdentifier": {"CodeListItemIdentifier": 3},
                "UserIdentifier": args.caller,
            },
            "RequestOrganisationStructure": {
                "OrganisationTypeIdentifier": {"CodeListItemIdentifier": 8},
                "OrganisationCode": "101",
            },
            "RegistrationDateTime": datetime.datetime.now(datetime.timezone.utc),
        },
    }

    jobcenter = client(args.base, "/JobcenterMessageService/2/JobcenterMessageService.svc", session)
    answer = jobcenter.service.SaveAvailabilityAssessment(
        CivilRegistrationIdentifier="0101701234",
        AvailabilityAssessmentCode=1,
        _soapheaders=headers,
    )
    print(
        "JobcenterMessageService.SaveAvailabilityAssessment receipt",
        answer.ServiceReceipt.MessageIdentifier,
        answer.ServiceReceipt.EventDate.isoformat(),
    )

    person = client(args.base, "/PersonStatusService/20/PersonStatusService.svc", session)
    answer = person.service.GetVariablePersonStatus(
        CivilRegistrationIdentifier="0101701234", _soapheaders=headers
    )
    print(
        "PersonStatusService.GetVariablePersonStatus cpr",
        answer.PersonStatus.CivilRegistrationIdentifier,
        "municipality",
        answer.PersonStatus.MunicipalityCode,
    )

    codes = client(args.base, "/CodeListService/1/CodeListService.svc", session)
    answer = codes.service.GetCodeList(CodeListName="Ydelsestype", _soapheaders=headers)
    print("CodeListService.GetCodeList items", len(answer.CodeList.CodeListItem))
    answer = codes.service.GetCodeListNames(_soapheaders=headers)
    print("CodeListService.GetCodeListNames names", len(answer.CodeListName))

    jobnet = client(
        args.base, "/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc", session
    )
    answer = jobnet.service.GetBorgerstatus(
        CivilRegistrationIdentifier="0101701234", _soapheaders=headers
    )
    print("JobnetCitizenStatusService.GetBorgerstatus status", answer.Borgerstatus.JobnetStatusCode)

    # An invalid CPR number: the mock (validation enforce) answers DFDG fault 1014.
    try:
        jobcenter.service.SaveAvailabilityAssessment(
            CivilRegistrationIdentifier="12",
            AvailabilityAssessmentCode=1,
            _soapheaders=headers,
        )
    except Fault as fault:
        namespace = "{http://service.bm.dk/xml/schemas/2011/01/12/}"
        code = fault.detail.find(f"{namespace}FaultDetails/{namespace}ErrorCode").text
        print("fault", code, fault.message)
    else:
        print("no fault for an invalid CPR number")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
