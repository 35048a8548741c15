#!/usr/bin/env python3
"""A second opinion on our schema work: libxml2 (through lxml, which zeep brings) validates the
messages dfdg-mock generated against the schemas of the WSDL they belong to.

Usage: xsd_crosscheck.py WSDL_FILE MESSAGE_FILE...
Each message file is a SOAP envelope; its Body element and header blocks are validated. The
WSDL's inline schemas are written out as separate files, each importing the others by location,
since libxml2 (like JAX-WS and suds) needs an xs:import where .NET does not.
Prints one line per message; exits 1 if any is invalid.

Driven by the Rust integration test tests/it/catalog.rs
(generated_messages_validate_with_libxml2_too).
"""

import copy
import os
import sys
import tempfile

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"


def compile_schema(wsdl_file, folder):
    wsdl = etree.parse(wsdl_file)
    base = os.path.dirname(os.path.abspath(wsdl_file))
    inline = wsdl.findall(f".//{{{WSDL}}}types/{{{XS}}}schema")
    namespaces = [schema.get("targetNamespace", "") for schema in inline]
    files = []
    for index, schema in enumerate(inline):
        nsmap = dict(wsdl.getroot().nsmap)
        nsmap.update(schema.nsmap)
        out = etree.Element(schema.tag, nsmap=nsmap)
        for name, value in schema.attrib.items():
            out.set(name, value)
        imported = set()
        for child in schema:
            child = copy.deepcopy(child)
            if child.tag in (f"{{{XS}}}import", f"{{{XS}}}include"):
                location = child.get("schemaLocation")
                if location is None:
                    continue  # added below, by location
                child.set("schemaLocation", os.path.join(base, location))
                imported.add(child.get("namespace"))
            out.append(child)
        for other, namespace in enumerate(namespaces):
            if other != index and namespace not in imported and namespace != namespaces[index]:
                element = etree.Element(f"{{{XS}}}import")
                element.set("namespace", namespace)
                element.set("schemaLocation", os.path.join(folder, f"inline{other}.xsd"))
                out.insert(0, element)
        path = os.path.join(folder, f"inline{index}.xsd")
        etree.ElementTree(out).write(path)
        files.append((namespace, path))
    driver = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    for namespace, path in zip(namespaces, [p for _, p in files]):
        element = etree.SubElement(driver, f"{{{XS}}}import")
        element.set("namespace", namespace)
        element.set("schemaLocation", path)
    driver_path = os.path.join(folder, "driver.xsd")
    etree.ElementTree(driver).write(driver_path)
    return etree.XMLSchema(etree.parse(driver_path))


def main():
    wsdl_file, messages = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as folder:
        schema = compile_schema(wsdl_file, folder)
        invalid = 0
        for message in messages:
            envelope = etree.parse(message).getroot()
            parts = []
            for child in envelope:
                local = etree.QName(child).localname
                if local == "Header":
                    parts.extend(child)
                elif local == "Body":
                    parts.extend(child[:1])
            for part in parts:
                if schema.validate(etree.ElementTree(copy.deepcopy(part))):
                    print("valid", os.path.basename(message), etree.QName(part).localname)
                else:
                    invalid += 1
                    print("INVALID", os.path.basename(message), schema.error_log)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
