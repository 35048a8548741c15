#!/usr/bin/env python3
"""A third real SOAP stack: Python's suds, which is stricter about schemas than zeep (it needs
every inline schema to import what it uses, as JAX-WS wsimport does). It builds its client from a
WSDL served by dfdg-mock over mutual TLS and calls one operation with STAR's two SOAP headers.

Usage: suds_client.py --wsdl URL --ca FILE --cert FILE --key FILE --operation NAME --caller ID
Prints `built <service> <operations>` once the client is built, then `called <operation>
receipt <ServiceRequestLogReferenceIdentifier>`; exits 1, printing the error, when suds cannot
build the client or the call fails.

Driven by the Rust integration test tests/it/contracts.rs
(suds_builds_its_client_from_the_tool_friendly_star_wsdl_and_calls_over_mutual_tls).
Needs suds (pip install suds==1.2.0).
"""

import argparse
import datetime
import ssl
import sys
import urllib.request

from suds.client import Client
from suds.transport.http import HttpTransport

AOH = "http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/"
RUMH = "http://service.bm.dk/RequestUserMetadata/2015/01/21/"
RUS = "http://service.bm.dk/pjaktass/2015/01/21/RequestUserStructure/"
ROS = "http://service.bm.dk/pjaktass/2015/01/21/RequestOrganisationStructure/"


class MutualTls(HttpTransport):
    """suds' urllib transport, presenting a client certificate and trusting only the test CA."""

    def __init__(self, context, **options):
        HttpTransport.__init__(self, **options)
        self.context = context

    def u2handlers(self):
        return [urllib.request.HTTPSHandler(context=self.context)]


def main():
    parser = argparse.ArgumentParser()
    for name in ("--wsdl", "--ca", "--cert", "--key", "--operation", "--caller"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    try:
        client = Client(args.wsdl, transport=MutualTls(context, timeout=20), cache=None)
    except Exception as error:  # suds raises its own types for schema problems
        print(f"cannot build the client: {type(error).__name__}: {error}")
        return 1
    service = client.wsdl.services[0]
    operations = sorted(m for m in service.ports[0].methods)
    print("built", service.name, ",".join(operations))

    organisation = client.factory.create(f"{{{AOH}}}ActiveOrganisationHeaderType")
    organisation.OrganisationTypeIdentifier = 8
    organisation.OrganisationCode = "101"
    user = client.factory.create(f"{{{RUMH}}}RequestUserMetadataType")
    user.RequestUserStructure = client.factory.create(f"{{{RUS}}}RequestUserStructureType")
    user.RequestUserStructure.UserFullName = "Fagsystem Test"
    user.RequestUserStructure.RequestUserTypeIdentifier.CodeListItemIdentifier = 3
    user.RequestUserStructure.UserIdentifier = args.caller
    user.RequestOrganisationStructure = client.factory.create(
        f"{{{ROS}}}RequestOrganisationStructureType"
    )
    user.RequestOrganisationStructure.OrganisationTypeIdentifier.CodeListItemIdentifier = 24
    user.RequestOrganisationStructure.OrganisationCode = "91234567"
    user.RegistrationDateTime = datetime.datetime.now(datetime.timezone.utc)
    client.set_options(soapheaders=[user, organisation])
    try:
        answer = getattr(client.service, args.operation)()
    except Exception as error:
        print(f"call failed: {type(error).__name__}: {error}")
        return 1
    receipt = getattr(answer, "ServiceRequestLogReferenceIdentifier", None)
    print("called", args.operation, "receipt", receipt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
